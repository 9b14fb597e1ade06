"""Choose the next token: greedy, temperature, top-k, top-p, constraints, log-probabilities."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

#: transformers' ``prefix_allowed_tokens_fn``: (batch index, ids so far) -> allowed next ids
AllowedTokensFn = Callable[[int, torch.Tensor], Sequence[int]]


@dataclass
class SamplingParams:
    """How one sequence is decoded; the fields mirror OpenAI's and vLLM's completions."""

    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    min_tokens: int = 0
    logprobs: int | None = None
    skip_special_tokens: bool = False
    ignore_eos: bool = False
    #: OpenAI's ``logit_bias``: token id -> value added to its logit (-100 bans, 100 forces)
    logit_bias: dict[int, float] = field(default_factory=dict)
    #: keep only the prompt's last N tokens (vLLM's ``truncate_prompt_tokens``)
    truncate_prompt_tokens: int | None = None
    #: a decoding constraint (e.g. titles from the user's own library)
    prefix_allowed_tokens_fn: AllowedTokensFn | None = None

    def validate(self, context: int) -> None:
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int):
            raise ValueError(f"max_tokens must be an integer, got {self.max_tokens!r}")
        if not 1 <= self.max_tokens < context:
            raise ValueError(f"max_tokens={self.max_tokens} must be between 1 and {context - 1}")
        if self.temperature < 0:
            raise ValueError(f"temperature={self.temperature} must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p} must be in (0, 1]")
        if self.top_k < 0:
            raise ValueError(f"top_k={self.top_k} must be >= 0")
        if not 0 <= self.min_tokens <= self.max_tokens:
            raise ValueError(f"min_tokens={self.min_tokens} must be between 0 and max_tokens")
        if self.logprobs is not None and not 0 <= self.logprobs <= 20:
            raise ValueError(f"logprobs={self.logprobs} must be between 0 and 20")
        for token, bias in self.logit_bias.items():
            if not isinstance(token, int) or token < 0:
                raise ValueError(f"logit_bias keys must be token ids, got {token!r}")
            if not -100 <= bias <= 100:
                raise ValueError(f"logit_bias values must be between -100 and 100, got {bias}")
        if (
            self.truncate_prompt_tokens is not None
            and not 1 <= self.truncate_prompt_tokens < context
        ):
            raise ValueError(
                f"truncate_prompt_tokens={self.truncate_prompt_tokens} must be between 1 "
                f"and {context - 1}"
            )

    def make_generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None or self.temperature == 0:
            return None
        return torch.Generator(device=device).manual_seed(self.seed)


@dataclass
class Choice:
    """The token picked for one sequence at one step, with its log-probabilities if asked."""

    token_id: int
    logprob: float | None = None
    top_logprobs: list[tuple[int, float]] | None = None


def choose(
    logits: torch.Tensor,
    params: SamplingParams,
    generator: torch.Generator | None,
    ids_so_far: torch.Tensor | None,
    generated: int,
    eos_ids: Sequence[int],
) -> Choice:
    """Pick the next token from one row of logits (``[vocab]``)."""
    # a copy: the caller may pass the same row again (the n choices of one prompt share it)
    logits = logits.to(torch.float32, copy=True)
    if params.logit_bias:
        ids = torch.tensor(list(params.logit_bias), device=logits.device)
        logits[ids] += torch.tensor(list(params.logit_bias.values()), device=logits.device)
    if generated < params.min_tokens:
        banned = [*eos_ids, *params.stop_token_ids]
        logits[banned] = float("-inf")
    if params.prefix_allowed_tokens_fn is not None and ids_so_far is not None:
        allowed = list(params.prefix_allowed_tokens_fn(0, ids_so_far))
        if allowed:
            mask = torch.full_like(logits, float("-inf"))
            mask[allowed] = 0
            logits = logits + mask
    logprobs = torch.log_softmax(logits, dim=-1) if params.logprobs is not None else None
    if params.temperature == 0:
        token = int(torch.argmax(logits))
    else:
        token = _sample(logits / params.temperature, params.top_k, params.top_p, generator)
    if logprobs is None:
        return Choice(token)
    top = []
    if params.logprobs:
        values, indices = torch.topk(logprobs, params.logprobs)
        top = list(zip(indices.tolist(), values.tolist(), strict=True))
    return Choice(token, float(logprobs[token]), top)


def _sample(
    logits: torch.Tensor, top_k: int, top_p: float, generator: torch.Generator | None
) -> int:
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < top_p
        sorted_probs = sorted_probs * keep
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))
