"""A request as the engine holds it, one running sequence of it, and the searches' protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from .constraints import ChoiceTrie, TrieNode
from .events import Completion
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

    @property
    def end_id(self) -> int:
        """The token that completes a choice (see ``constraints``)."""
        return self.params.stop_token_ids[0] if self.params.stop_token_ids else 2


@dataclass
class SeqState:
    request: Request
    index: int
    ids: list[int]  # prompt and generated tokens
    prompt_len: int
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
