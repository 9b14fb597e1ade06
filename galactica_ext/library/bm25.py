"""Okapi BM25 over library entries, to shortlist a large library from the text being written.

Pure Python: an inverted index of each entry's title, authors and container title, built once
per library (about 0.1 s for 10,000 entries), then a query scores only the entries that share a
word with it.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict

from .model import Entry

__all__ = ["BM25"]

_WORD = re.compile(r"[^\W_]{2,}")
#: words too common in scientific prose to say anything about which work is cited
_STOPWORDS_TEXT = """
the of and in to for on with by an is are as at from that this be or we our its it
using based via into can which these their was were has have been not new study
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


def words(text: str) -> list[str]:
    """Lower-case word tokens without accents or stopwords."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return [w for w in _WORD.findall(text) if w not in STOPWORDS]


class BM25:
    """BM25 (k1 = 1.5, b = 0.75) over entries; :meth:`top` gives the best indices."""

    def __init__(self, entries: list[Entry], k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.lengths: list[int] = []
        for index, entry in enumerate(entries):
            container = entry.csl.get("container-title") if entry.csl else None
            text = " ".join(
                [entry.title, " ".join(entry.authors), str(container or ""), entry.year or ""]
            )
            counts = Counter(words(text))
            self.lengths.append(sum(counts.values()))
            for word, count in counts.items():
                self.postings[word].append((index, count))
        self.size = len(self.lengths)
        self.average = (sum(self.lengths) / self.size) if self.size else 0.0

    def scores(self, query: str) -> dict[int, float]:
        """The score of every entry sharing a word with ``query`` (others score 0)."""
        out: dict[int, float] = defaultdict(float)
        for word, weight in Counter(words(query)).items():
            posting = self.postings.get(word)
            if not posting:
                continue
            idf = math.log(1 + (self.size - len(posting) + 0.5) / (len(posting) + 0.5))
            for index, count in posting:
                norm = 1 - self.b + self.b * self.lengths[index] / (self.average or 1)
                out[index] += weight * idf * count * (self.k1 + 1) / (count + self.k1 * norm)
        return out

    def top(self, query: str, k: int) -> list[int]:
        """The indices of the ``k`` best entries for ``query``, best first; ties and entries
        that share no word with it keep library order after them."""
        scores = self.scores(query)
        ranked = sorted(scores, key=lambda i: (-scores[i], i))[:k]
        if len(ranked) < k:
            chosen = set(ranked)
            ranked += [i for i in range(self.size) if i not in chosen][: k - len(ranked)]
        return ranked
