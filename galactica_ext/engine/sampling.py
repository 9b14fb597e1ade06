"""Choose the next token: greedy, temperature, top-k, top-p, constraints, log-probabilities.

Every computation is in float32. A distribution that cannot be sampled (NaN or infinite
probabilities, e.g. a temperature so small that the scaled logits overflow) raises
``SamplingError`` for that sequence alone; the decoding is never silently changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from ..protocol.limits import MAX_CHOICE_CHARS, MAX_CHOICES, MAX_LOGPROBS

#: transformers' ``prefix_allowed_tokens_fn``: (batch index, ids so far) -> allowed next ids
AllowedTokensFn = Callable[[int, torch.Tensor], Sequence[int]]


class SamplingError(ArithmeticError):
    """The next token of one sequence could not be chosen (its distribution is invalid)."""


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
    #: group (diverse) beam search: the beams split into this many groups (transformers' name)
    num_beam_groups: int = 1
    #: Hamming diversity: subtracted per use of a token by an earlier group at the same step
    diversity_penalty: float = 0.0
    #: contrastive search when > 0, ``top_k`` > 1 and temperature 0 (transformers' rule)
    penalty_alpha: float = 0.0
    #: generate exactly one of these strings (vLLM's ``structured_outputs.choice``)
    choices: tuple[str, ...] | None = None

    def validate(self, context: int) -> None:
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int):
            raise ValueError(f"max_tokens must be an integer, got {self.max_tokens!r}")
        if not 1 <= self.max_tokens < context:
            raise ValueError(f"max_tokens={self.max_tokens} must be between 1 and {context - 1}")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise ValueError(f"temperature={self.temperature} must be a finite number >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p} must be in (0, 1]")
        if self.top_k < 0:
            raise ValueError(f"top_k={self.top_k} must be >= 0")
        if not 0 <= self.min_tokens <= self.max_tokens:
            raise ValueError(f"min_tokens={self.min_tokens} must be between 0 and max_tokens")
        if self.logprobs is not None and not 0 <= self.logprobs <= MAX_LOGPROBS:
            raise ValueError(f"logprobs={self.logprobs} must be between 0 and {MAX_LOGPROBS}")
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
        self._validate_modes()

    def _validate_modes(self) -> None:
        if isinstance(self.num_beam_groups, bool) or not isinstance(self.num_beam_groups, int):
            raise ValueError(f"num_beam_groups must be an integer, got {self.num_beam_groups!r}")
        if self.num_beam_groups < 1:
            raise ValueError(f"num_beam_groups={self.num_beam_groups} must be >= 1")
        if not math.isfinite(self.diversity_penalty) or self.diversity_penalty < 0:
            raise ValueError(f"diversity_penalty={self.diversity_penalty} must be >= 0")
        if self.num_beam_groups > 1 and self.diversity_penalty == 0:
            raise ValueError(
                "num_beam_groups > 1 needs diversity_penalty > 0 (else every group is the same)"
            )
        if not 0 <= self.penalty_alpha <= 1:
            raise ValueError(f"penalty_alpha={self.penalty_alpha} must be between 0 and 1")
        if self.choices is None:
            return
        if isinstance(self.choices, str) or not isinstance(self.choices, (tuple, list)):
            raise ValueError("choices must be a list of strings")
        if not 1 <= len(self.choices) <= MAX_CHOICES:
            raise ValueError(
                f"choices must hold 1 to {MAX_CHOICES} strings, got {len(self.choices)}"
            )
        for choice in self.choices:
            if not isinstance(choice, str) or not 1 <= len(choice) <= MAX_CHOICE_CHARS:
                raise ValueError(
                    f"each choice must be a string of 1 to {MAX_CHOICE_CHARS} characters, "
                    f"got {str(choice)[:40]!r}"
                )
        if self.prefix_allowed_tokens_fn is not None:
            raise ValueError("choices and prefix_allowed_tokens_fn cannot be combined")

    @property
    def contrastive(self) -> bool:
        """Whether this is contrastive search, as transformers decides it: not sampling
        (temperature 0), ``penalty_alpha > 0`` and ``top_k > 1``."""
        return self.temperature == 0 and self.penalty_alpha > 0 and self.top_k > 1


@dataclass
class Choice:
    """The token picked for one sequence at one step, with its log-probabilities if asked."""

    token_id: int
    logprob: float | None = None
    top_logprobs: list[tuple[int, float]] | None = None


def add_bias(scores: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """``logit_bias`` added in place to a ``[..., vocab]`` float tensor."""
    if params.logit_bias:
        ids = torch.tensor(list(params.logit_bias), device=scores.device)
        values = torch.tensor(list(params.logit_bias.values()), device=scores.device)
        scores[..., ids] += values.to(scores.dtype)
    return scores


def banned_ends(generated: int, params: SamplingParams, ends: Sequence[int]) -> Sequence[int]:
    """``min_tokens``: the end ids a sequence may not choose after ``generated`` tokens (all of
    them while fewer than ``min_tokens``, none after)."""
    return ends if generated < params.min_tokens else ()


def ban_ends(scores: torch.Tensor, generated: int, params: SamplingParams, ends: Sequence[int]):
    """``min_tokens``: the end ids banned (in place) while fewer tokens were generated."""
    return _ban(scores, banned_ends(generated, params, ends))


def _ban(scores: torch.Tensor, tokens: Sequence[int]) -> torch.Tensor:
    """``tokens`` set to -inf in (the last dimension of) ``scores``, in place."""
    if tokens:
        scores[..., list(tokens)] = float("-inf")
    return scores


def allow_only(scores: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """Every token but ``allowed`` (ids) set to -inf, in place; ``None`` allows all."""
    if allowed is not None:
        keep = scores[..., allowed].clone()
        scores.fill_(float("-inf"))
        scores[..., allowed] = keep
    return scores


def check_logits(logits: torch.Tensor) -> None:
    if torch.isnan(logits).any():
        raise SamplingError(
            "the model produced NaN logits for this sequence (a numerical overflow); "
            "try float32 or bfloat16 instead of float16"
        )


def choose(
    logits: torch.Tensor,
    params: SamplingParams,
    generator: torch.Generator | None,
    ids_so_far: torch.Tensor | None,
    generated: int,
    ends: Sequence[int],
    allowed: torch.Tensor | None = None,
) -> Choice:
    """Pick the next token from one row of logits (``[vocab]``).

    ``ends`` (the tokens that end the sequence) are banned while fewer than ``min_tokens``
    were ``generated``.
    ``allowed`` (token ids) restricts the choice, like ``prefix_allowed_tokens_fn`` (an empty
    list from that function means no constraint). Reported log-probabilities are the model's
    (after ``logit_bias``), before ``min_tokens`` and constraints mask tokens out, so that
    their sum over a constrained sequence is the model's own score for it.
    """
    # a copy: the caller may pass the same row again (the n choices of one prompt share it)
    logits = logits.to(torch.float32, copy=True)
    check_logits(logits)
    add_bias(logits, params)
    logprobs = torch.log_softmax(logits, dim=-1) if params.logprobs is not None else None
    ban_ends(logits, generated, params, ends)
    if params.prefix_allowed_tokens_fn is not None and ids_so_far is not None:
        fn_allowed = list(params.prefix_allowed_tokens_fn(0, ids_so_far))
        if fn_allowed:
            allow_only(logits, torch.tensor(fn_allowed, device=logits.device))
    allow_only(logits, allowed)
    if params.temperature == 0:
        if not torch.isfinite(logits.max()):
            raise SamplingError("no token is allowed here: every next token has probability 0")
        token = int(torch.argmax(logits))
    else:
        token = _sample(logits, params, generator)
    if logprobs is None:
        return Choice(token)
    return scored(token, logprobs, params.logprobs)


def scored(token: int, logprobs: torch.Tensor, top: int | None) -> Choice:
    """``token`` with its log-probability and the ``top`` most probable tokens' (``logprobs``:
    one row, ``[vocab]``)."""
    best: list[tuple[int, float]] = []
    if top:
        values, ids = torch.topk(logprobs, top)
        best = list(zip(ids.tolist(), values.tolist(), strict=True))
    return Choice(token, float(logprobs[token]), best)


def _sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> int:
    logits = logits / params.temperature
    if params.top_k > 0:
        kth = torch.topk(logits, min(params.top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if not bool(torch.isfinite(probs).all()) or not float(probs.sum()) > 0:
        raise SamplingError(
            f"sampling at temperature={params.temperature!r} failed: the next-token "
            "probabilities are NaN or infinite (the scaled logits overflow float32, or no token "
            "is allowed); use temperature 0 for greedy decoding, or a temperature of at least 1e-2"
        )
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < params.top_p
        sorted_probs = sorted_probs * keep
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


def plain_greedy(params: SamplingParams) -> bool:
    """Whether a sequence's next token is the argmax of its logits, with at most its end
    tokens banned (``min_tokens``): ``choose_greedy`` may pick it."""
    return (
        params.temperature == 0
        and not params.logit_bias
        and params.prefix_allowed_tokens_fn is None
        and params.choices is None
    )


def choose_greedy(
    logits: torch.Tensor,
    logprobs: Sequence[int | None],
    banned: Sequence[Sequence[int]] = (),
) -> list[Choice | None]:
    """Greedy choices for the rows of ``logits`` (``[rows, vocab]``) at once: one argmax, and
    one log-softmax for the rows that report log-probabilities (``logprobs[i]`` as in
    ``SamplingParams``). ``banned[i]``: tokens row i may not choose (:func:`banned_ends`;
    log-probabilities are reported before the ban, as ``choose`` does). The
    same tokens and values as ``choose`` row by row; a row with NaN logits, or with every
    token banned, gets None (``choose`` then fails that sequence alone). ``logits`` is not
    changed."""
    logits = logits.to(torch.float32, copy=any(banned))
    bad = torch.isnan(logits).any(dim=-1).tolist()
    wanted = [i for i, k in enumerate(logprobs) if k is not None and not bad[i]]
    if wanted:  # the model's log-probabilities: before the ban
        index = torch.tensor(wanted, device=logits.device)
        rows = torch.log_softmax(logits.index_select(0, index), dim=-1)
    for i, ends in enumerate(banned):
        _ban(logits[i], ends)
    best, argmax = torch.max(logits, dim=-1)
    tokens: list[int | None] = [
        None if value == float("-inf") else token
        for value, token in zip(best.tolist(), argmax.tolist(), strict=True)
    ]
    values: dict[int, tuple[float, list[tuple[int, float]]]] = {}
    if wanted:
        chosen = [[tokens[i] or 0] for i in wanted]  # 0: a row with nothing chosen, unused
        picked = rows.gather(1, torch.tensor(chosen, device=rows.device))
        most = max(logprobs[i] or 0 for i in wanted)
        top_v, top_i = torch.topk(rows, most) if most else (rows[:, :0], rows[:, :0].long())
        for j, i in enumerate(wanted):
            k = logprobs[i] or 0
            top = list(zip(top_i[j, :k].tolist(), top_v[j, :k].tolist(), strict=True))
            values[i] = (float(picked[j, 0]), top)
    out: list[Choice | None] = []
    for i, token in enumerate(tokens):
        if bad[i] or token is None:
            out.append(None)
        elif i in values:
            out.append(Choice(token, values[i][0], values[i][1]))
        else:
            out.append(Choice(token))
    return out
