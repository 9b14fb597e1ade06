"""A request as the engine holds it, one running sequence of it, and the searches' protocol.

A request also decides, for every decoding path (the continuous batch, beam searches,
contrastive search), when one of its sequences ends and why, and finishes a choice: one
place, so that the paths cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from .constraints import END, ChoiceTrie, TrieNode
from .events import ChoiceResult, Completion, Delta, Finished
from .sampling import Choice, SamplingParams
from .textstream import TextStream


@dataclass
class Request:
    completion: Completion
    prompt_ids: list[int]
    truncated: bool
    params: SamplingParams
    num_beams: int = 1
    trie: ChoiceTrie | None = None
    #: the model's end of document
    eos_ids: tuple[int, ...] = (2,)
    #: the tokens that end a sequence: the end of document (unless ``ignore_eos``) and
    #: ``stop_token_ids``; with choices, the end token alone (see ``constraints``)
    ends: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.trie is not None:
            self.ends = (self.end_id,)
        else:
            eos = () if self.params.ignore_eos else self.eos_ids
            self.ends = tuple(dict.fromkeys([*eos, *self.params.stop_token_ids]))

    @property
    def end_id(self) -> int:
        """The token that completes a choice (see ``constraints``)."""
        return self.params.stop_token_ids[0] if self.params.stop_token_ids else 2

    def ended(self, token: int, node: TrieNode | int | None) -> bool:
        """Whether ``token``, just generated (``node``: where it led in the trie), ends the
        sequence: only a completed choice ends a constrained one."""
        if self.trie is not None:
            return node == END
        return token in self.ends

    def full(self, generated: int, context: int) -> bool:
        """Whether a sequence of ``generated`` tokens has no room for another."""
        return generated >= self.params.max_tokens or len(self.prompt_ids) + generated >= context

    def finish(
        self,
        index: int,
        reason: str,
        text: str,
        *,
        tail: Delta | None = None,
        tokens: Sequence[int] = (),
        logprobs: Sequence[Choice] = (),
        reused: int = 0,
    ) -> None:
        """Choice ``index`` is done: its last text out (``tail``, unless empty), then its
        result. Every decoding path finishes its choices here."""
        if tail is not None and (tail.text or tail.token_ids):
            self.completion.emit(tail)
        kept = list(logprobs) if self.params.logprobs is not None else []
        result = ChoiceResult(
            index, text, reason, list(tokens), len(self.prompt_ids), self.truncated, kept, reused
        )
        self.completion.emit(Finished(result))

    def finish_unstarted(self) -> None:
        """Cancelled before it started: every choice empty, ``cancelled``."""
        for index in range(self.completion.n):
            self.finish(index, "cancelled", "")


@dataclass
class SeqState:
    request: Request
    index: int
    ids: list[int]  # prompt and generated tokens
    text: TextStream
    generator: torch.Generator | None
    next_token: int = -1
    generated: list[int] = field(default_factory=list)
    logprobs: list[Choice] = field(default_factory=list)
    reused: int = 0
    node: TrieNode | int | None = None  # where a choice-constrained sequence is in its trie

    @property
    def kv_len(self) -> int:  # tokens in the cache: all but the last sampled one
        return len(self.ids) - 1


class Search(Protocol):
    """A request decoded by its own search loop, one model step per call of ``step``."""

    completion: Completion

    def step(self) -> bool:
        """Advance one step; True once the results are emitted."""

    def finish_cancelled(self) -> None:
        """Emit the best results so far as cancelled."""


def check_modes(params: SamplingParams, n: int, num_beams: int) -> None:
    """Refuse decoding modes that do not go together (ValueError naming the fields)."""
    groups = params.num_beam_groups
    if groups > 1 and (num_beams < 2 or num_beams % groups):
        raise ValueError(
            f"num_beam_groups={groups} must divide num_beams={num_beams} (and num_beams > 1)"
        )
    if params.contrastive and (n > 1 or num_beams > 1):
        raise ValueError(
            "contrastive search (penalty_alpha > 0, top_k > 1) gives one sequence: "
            "use n=1 and no beams"
        )
