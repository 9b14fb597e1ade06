"""Is a free suggestion one of the library's works? Fuzzy matching, and the unverified mark.

A suggestion ``"Title, Surname"`` matches an entry when

- the titles, normalised (:func:`normalise`: lower case, accents and punctuation dropped,
  LaTeX decoded), have rapidfuzz ``token_sort_ratio`` >= :data:`TITLE_THRESHOLD` (90 of 100:
  a word order change, a typo or a missing short word pass; a different paper with a
  similar name rarely does), and
- the surname is the entry's first author's (normalised, or the same last word, so that
  "van der Waals" and "Waals" agree), or either side has no author.

Otherwise the suggestion is *unverified*: it is shown marked, and inserted as the Pandoc span
``[Title, Surname]{.unverified}``, never as something that looks like a key.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

from rapidfuzz import fuzz, process

from .latex import decode_latex
from .model import Entry, Library

__all__ = [
    "TITLE_THRESHOLD",
    "Matcher",
    "library_suggestion",
    "normalise",
    "search_url",
    "unverified_span",
]

#: the least ``token_sort_ratio`` (0-100) of two normalised titles that counts as a match
TITLE_THRESHOLD = 90.0
_NON_WORD = re.compile(r"[^\w\s]|_")


def normalise(text: str | None) -> str:
    """Text for comparison: LaTeX decoded, accents removed, lower case, words only."""
    if not text:
        return ""
    if "\\" in text or "{" in text:
        text = decode_latex(text)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(_NON_WORD.sub(" ", text.casefold()).split())


def _same_surname(a: str, b: str) -> bool:
    if not a or not b:
        return True
    return a == b or a.split()[-1] == b.split()[-1]


@dataclass
class Match:
    entry: Entry
    score: float


class Matcher:
    """Matches free suggestions against one library (titles normalised once)."""

    def __init__(self, library: Library | list[Entry], threshold: float = TITLE_THRESHOLD) -> None:
        self.entries = list(library)
        self.threshold = threshold
        self._titles = [normalise(e.title) for e in self.entries]
        self._authors = [normalise(e.author) for e in self.entries]

    def match(self, title: str, author: str | None = None) -> Match | None:
        """The best entry whose title and first author agree with the suggestion, or None."""
        wanted = normalise(title)
        if not wanted or not self.entries:
            return None
        surname = normalise(author)
        candidates = process.extract(
            wanted,
            self._titles,
            scorer=fuzz.token_sort_ratio,
            score_cutoff=self.threshold,
            limit=8,
        )
        for _text, score, index in candidates:
            if _same_surname(surname, self._authors[index]):
                return Match(self.entries[index], float(score))
        return None


def unverified_span(title: str, author: str | None = None) -> str:
    """The Pandoc span a suggestion not found in a library is inserted as: brackets inside
    become parentheses and ``@`` is escaped (``\\@``), so nothing in it reads as a citation key
    (as js/citations/insert.ts's ``unverifiedSpan``)."""
    text = f"{title}, {author}" if author else title
    text = text.replace("[", "(").replace("]", ")").replace("@", "\\@")
    text = " ".join(text.split())
    return f"[{text}]{{.unverified}}"


def search_url(title: str, author: str | None = None) -> str:
    """Where to check that a work exists (a Google Scholar search for it)."""
    query = f"{title} {author}" if author else title
    return f"https://scholar.google.com/scholar?q={quote_plus(query)}"


def library_suggestion(entry: Entry, **extra: Any) -> dict[str, Any]:
    """A suggestion that is a library entry: its fields, ``source: "library"``, ``[@key]``."""
    return {
        "key": entry.key,
        "title": entry.title,
        "author": entry.author,
        "year": entry.year,
        "doi": entry.doi,
        "url": entry.url,
        "text": f"{entry.title}, {entry.author}" if entry.author else entry.title,
        "source": "library",
        "verified": True,
        "insert": f"[@{entry.key}]",
        **extra,
    }


def check_suggestions(
    suggestions: list[dict[str, Any]], matcher: Matcher | None
) -> list[dict[str, Any]]:
    """Free suggestions (``tasks.parse`` of a cite) marked: the library entry when one
    matches (``source: "library"``, ``score``), else ``verified: False`` with the span to
    insert. Two suggestions that are the same entry are given once."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for suggestion in suggestions:
        title, author = suggestion.get("title") or "", suggestion.get("author")
        found = matcher.match(title, author) if matcher is not None else None
        if found is not None:
            if found.entry.key in seen:
                continue
            seen.add(found.entry.key)
            out.append(
                library_suggestion(found.entry, score=found.score, generated=suggestion["text"])
            )
            continue
        out.append(
            {
                "key": None,
                "title": title,
                "author": author,
                "year": None,
                "text": suggestion.get("text") or title,
                "source": "model",
                "verified": False,
                "insert": unverified_span(title, author),
                "search": search_url(title, author),
            }
        )
    return out
