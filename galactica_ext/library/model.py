"""What a bibliography holds once read: entries, the problems met, and the library they form.

Every reader (BibTeX, CSL-JSON/YAML, notebook metadata) produces :class:`Entry` objects with
the same normalised fields plus the entry as CSL-JSON (for the CSL processor), and
:class:`Problem` objects for what it could not read. Nothing here raises on bad data.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """Something that could not be read: a whole file or one entry (``line`` is 1-based)."""

    source: str
    message: str
    line: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "line": self.line, "key": self.key, "message": self.message}


@dataclass
class Entry:
    """One work of the library, normalised.

    ``author`` is the first author's surname (family name), as GALACTICA writes it after the
    title; ``authors`` holds every author's surname. ``csl`` is the entry as a CSL-JSON item
    (its ``id`` is ``key``), used for formatting and export.
    """

    key: str
    title: str
    author: str | None = None
    authors: list[str] = field(default_factory=list)
    year: str | None = None
    doi: str | None = None
    url: str | None = None
    csl: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    #: the BibTeX entry as read (type and raw fields), when it came from a .bib file
    bibtex: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields a browser shows (no CSL, no raw BibTeX)."""
        return {
            "key": self.key,
            "title": self.title,
            "author": self.author,
            "authors": list(self.authors),
            "year": self.year,
            "doi": self.doi,
            "url": self.url,
            "source": self.source,
        }


@dataclass
class Library:
    """Entries in reading order, unique keys (the first wins), and every problem met."""

    entries: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_key: dict[str, Entry] = {}
        entries, self.entries = self.entries, []
        self.extend(entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def get(self, key: str) -> Entry | None:
        return self._by_key.get(key)

    def extend(self, entries: Iterable[Entry]) -> None:
        """Add entries; a key seen before is reported as a duplicate and the first one kept."""
        for entry in entries:
            first = self._by_key.get(entry.key)
            if first is not None:
                self.problems.append(
                    Problem(
                        entry.source,
                        f"duplicate key {entry.key!r}: kept the entry from {first.source}, "
                        "ignored this one",
                        key=entry.key,
                    )
                )
                continue
            self._by_key[entry.key] = entry
            self.entries.append(entry)

    def with_key_prefix(self, prefix: str) -> Library:
        """The entries whose key starts with ``prefix`` (case-insensitive), same problems."""
        wanted = prefix.casefold()
        chosen = [e for e in self.entries if e.key.casefold().startswith(wanted)]
        return Library(chosen, list(self.problems), list(self.sources))

    def merge(self, other: Library) -> None:
        """Add another library's entries, problems and sources (its duplicates reported)."""
        self.problems.extend(other.problems)
        self.sources.extend(s for s in other.sources if s not in self.sources)
        self.extend(other.entries)

    def to_dict(self) -> dict[str, Any]:
        return {
            "entries": [e.to_dict() for e in self.entries],
            "problems": [p.to_dict() for p in self.problems],
            "sources": list(self.sources),
        }
