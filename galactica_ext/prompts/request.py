"""What to generate: :class:`GenerationRequest`, GALACTICA's control tokens, and the checks on
the options users give (each with an error that says what is accepted)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..protocol.limits import (
    INT64_MAX,
    INT64_MIN,
    MAX_N,
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
    MIN_TOP_P,
    VOCAB_SIZE,
)
from ..specs import CONTEXT_LENGTH

START_REF = "[START_REF]"
END_REF = "[END_REF]"
START_REF_ID = 4
END_REF_ID = 5
EOS = "</s>"
WORK_START = "<work>"
WORK_END = "</work>"
#: ids of the sequence span markers in every GALACTICA tokenizer
SPAN_END_IDS = {"DNA": 16, "AMINO": 18, "SMILES": 20, "I_SMILES": 22}
#: Tokens a stop may not end a generation within (``min_tokens``): the blank line GALACTICA
#: often writes first (``" \n\n"`` is three tokens: " ", "\n", "\n"). See :func:`lead_in`.
LEAD_IN_TOKENS = 3


@dataclass
class GenerationRequest:
    """What to generate: the prompt and how to decode it.

    ``temperature == 0`` means greedy (or beam search when ``num_beams > 1``; group beam
    search when ``num_beam_groups > 1``, which needs ``diversity_penalty > 0``; contrastive
    search when ``penalty_alpha > 0`` and ``top_k > 1``). ``choices`` limits the output to
    one of the given strings. ``truncate_prompt_tokens`` keeps only the prompt's last tokens so
    that prompt and new tokens fit GALACTICA's context (vLLM's parameter of the same name).
    """

    task: str
    prompt: str
    max_tokens: int
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    n: int = 1
    num_beams: int = 1
    num_beam_groups: int = 1
    diversity_penalty: float = 0.0
    penalty_alpha: float = 0.0
    choices: list[str] | None = None
    seed: int | None = None
    #: no stop (string, token id or end of document) ends the first ``min_tokens`` tokens
    min_tokens: int = 0
    #: the text that was sent as the prompt's end (for parsers that need it)
    suffix: str = ""

    @property
    def truncate_prompt_tokens(self) -> int:
        return CONTEXT_LENGTH - self.max_tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_text(text: Any, what: str = "text") -> str:
    """``text`` when it is a non-blank string; TypeError or ValueError otherwise."""
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"{what} is empty: give the text to work on")
    return text


def check_max_tokens(max_tokens: Any) -> int:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise TypeError(f"max_tokens must be an integer, got {max_tokens!r}")
    if not 1 <= max_tokens <= CONTEXT_LENGTH - 1:
        raise ValueError(
            f"max_tokens={max_tokens} is out of range: GALACTICA's context is {CONTEXT_LENGTH} "
            f"tokens, so use 1 to {CONTEXT_LENGTH - 1} (the prompt gets the rest)"
        )
    return max_tokens


def number(name: str, value: Any, *, integer: bool = False) -> Any:
    """``value`` when it is a finite number (an integer with ``integer``); TypeError or
    ValueError naming ``name`` otherwise."""
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        what = "an integer" if integer else "a number"
        raise TypeError(f"{name} must be {what}, got {value!r}")
    if not integer and not math.isfinite(value):
        raise ValueError(f"{name}={value} must be a finite number")
    return value


def check_sampling(temperature: Any, top_p: Any, top_k: Any, n: Any) -> None:
    """The sampling options, within the limits every server takes (``protocol``'s)."""
    number("temperature", temperature)
    number("top_p", top_p)
    number("top_k", top_k, integer=True)
    number("n", n, integer=True)
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0 (0 means greedy)")
    if temperature and not MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE:
        raise ValueError(
            f"temperature={temperature} is out of range: use 0 for greedy decoding, or "
            f"{MIN_TEMPERATURE} to {MAX_TEMPERATURE}"
        )
    if not MIN_TOP_P <= top_p <= 1:
        raise ValueError(f"top_p={top_p} must be in (0, 1]: {MIN_TOP_P} to 1")
    if not 0 <= top_k <= VOCAB_SIZE:
        raise ValueError(f"top_k={top_k} must be >= 0 (0 means no limit) and <= {VOCAB_SIZE}")
    if not 1 <= n <= MAX_N:
        raise ValueError(f"n={n} must be between 1 and {MAX_N}")


def check_flags(**flags: Any) -> None:
    """Yes/no options must be booleans (a string such as "false" would read as true)."""
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be true or false, got {value!r}")


def check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    number("seed", seed, integer=True)
    if not INT64_MIN <= seed <= INT64_MAX:
        raise ValueError(f"seed={seed} must be in the signed 64-bit range")
    return seed


def check_penalty_alpha(penalty_alpha: Any) -> float:
    number("penalty_alpha", penalty_alpha)
    if not 0 <= penalty_alpha <= 1:
        raise ValueError(
            f"penalty_alpha={penalty_alpha} must be from 0 to 1 (0: no contrastive search)"
        )
    return penalty_alpha


def sampling_temperature(temperature: Any, top_p: Any, top_k: Any) -> float:
    """The temperature to use: as galai, ``top_p`` or ``top_k`` given alone means sampling
    (at temperature 1, transformers' default); an explicit ``temperature=0`` stays greedy."""
    if temperature is not None:
        return temperature
    check_sampling(0.0, top_p, top_k, 1)
    return 1.0 if top_p < 1.0 or top_k > 0 else 0.0


def new_document(prompt: str, new_doc: bool) -> str:
    """``</s>`` before the prompt when it starts a new document (galai's ``new_doc``)."""
    return EOS + prompt if new_doc and not prompt.startswith(EOS) else prompt


def lead_in(max_tokens: int) -> int:
    """``min_tokens`` for a request whose stop is a blank line: GALACTICA often starts an
    answer with one (galai's README: ``"Answer: \\n\\nNotch…"``), and a stop must not end a
    generation that has produced nothing yet. vLLM ignores stop strings, stop token ids and
    the end of document within the first ``min_tokens`` tokens (its detokenizer checks stop
    strings only once more than ``min_tokens`` tokens are out), and so does our engine
    (``engine.textstream.TextStream``)."""
    return min(LEAD_IN_TOKENS, max_tokens)


def cut_after_lead_in(raw: str, stops: list[str]) -> tuple[str, str]:
    """``raw`` split into its leading whitespace and the rest, cut at the first stop that
    comes after some text (a stop inside the leading whitespace does not count)."""
    body = raw.lstrip()
    lead = raw[: len(raw) - len(body)]
    cut = len(body)
    for stop in stops:
        at = body.find(stop)
        if at != -1:
            cut = min(cut, at)
    return lead, body[:cut]
