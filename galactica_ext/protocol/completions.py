"""``POST /v1/completions``: the request (OpenAI's legacy completions with vLLM's extras), the
whole reply and the stream's chunks."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import check_model, check_utf8, fail, parse_body, short
from .limits import (
    CONTEXT_LENGTH,
    INT64_MAX,
    INT64_MIN,
    MAX_CHOICE_CHARS,
    MAX_CHOICES,
    MAX_LOGIT_BIAS,
    MAX_LOGPROBS,
    MAX_MODEL_BYTES,
    MAX_N,
    MAX_PROMPT_CHARS,
    MAX_PROMPT_IDS,
    MAX_PROMPTS,
    MAX_STOP_CHARS,
    MAX_STOP_TOKEN_IDS,
    MAX_STOPS,
    MAX_TEMPERATURE,
    MAX_TRUNCATED_PROMPT_IDS,
    MIN_TEMPERATURE,
    MIN_TOP_P,
    VOCAB_SIZE,
)


class StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    include_usage: bool | None = False


class StructuredOutputs(BaseModel):
    """vLLM's ``structured_outputs``: of its kinds, the agent supports ``choice``."""

    model_config = ConfigDict(strict=True, extra="forbid")
    choice: list[str] | None = None


def _check_choices(value: list[str] | None, param: str) -> list[str] | None:
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_CHOICES:
        raise fail(param, f"{param} must hold 1 to {MAX_CHOICES} strings, got {len(value)}")
    for choice in value:
        if not 1 <= len(choice) <= MAX_CHOICE_CHARS:
            raise fail(param, f"each of {param} must be 1 to {MAX_CHOICE_CHARS} characters long")
        check_utf8(choice, param)
    return value


class CompletionRequest(BaseModel):
    """A ``POST /v1/completions`` body: OpenAI's legacy completions with vLLM's extras.

    Unknown fields are ignored (as OpenAI and vLLM do); fields that exist but that the agent
    does not implement are accepted only at their neutral value.
    """

    model_config = ConfigDict(strict=True, extra="ignore")

    model: str | None = Field(None, description=f"a model name of at most {MAX_MODEL_BYTES} bytes")
    prompt: str | list[str] | list[int] | list[list[int]] = Field(
        description=f"a string, a list of up to {MAX_PROMPTS} strings, token ids "
        f"(0 to {VOCAB_SIZE - 1}) or lists of token ids"
    )
    max_tokens: int = Field(
        16, ge=1, le=CONTEXT_LENGTH - 1, description=f"an integer from 1 to {CONTEXT_LENGTH - 1}"
    )
    temperature: float = Field(
        1.0,
        description=f"0 for greedy decoding, or {MIN_TEMPERATURE} to {MAX_TEMPERATURE}",
    )
    top_p: float = Field(1.0, ge=MIN_TOP_P, le=1.0, description=f"a number from {MIN_TOP_P} to 1")
    top_k: int = Field(
        0, ge=-1, le=VOCAB_SIZE, description=f"-1 or 0 (no limit), or 1 to {VOCAB_SIZE}"
    )
    n: int = Field(1, ge=1, le=MAX_N, description=f"an integer from 1 to {MAX_N}")
    best_of: int | None = Field(None, description="leave out, or equal to n")
    stop: str | list[str] | None = Field(
        None,
        description=f"a string or a list of at most {MAX_STOPS} strings, each 1 to "
        f"{MAX_STOP_CHARS} characters",
    )
    stop_token_ids: list[int] | None = Field(
        None,
        max_length=MAX_STOP_TOKEN_IDS,
        description=f"at most {MAX_STOP_TOKEN_IDS} token ids, each 0 to {VOCAB_SIZE - 1}",
    )
    logprobs: int | None = Field(
        None, ge=0, le=MAX_LOGPROBS, description=f"an integer from 0 to {MAX_LOGPROBS}"
    )
    logit_bias: dict[str, float] | None = Field(
        None,
        max_length=MAX_LOGIT_BIAS,
        description=f"at most {MAX_LOGIT_BIAS} token ids (0 to {VOCAB_SIZE - 1}) mapped to "
        "numbers from -100 to 100",
    )
    seed: int | None = Field(
        None, ge=INT64_MIN, le=INT64_MAX, description="an integer in the signed 64-bit range"
    )
    truncate_prompt_tokens: int | None = Field(
        None,
        ge=1,
        le=CONTEXT_LENGTH - 1,
        description=f"an integer from 1 to {CONTEXT_LENGTH - 1}",
    )
    min_tokens: int = Field(0, ge=0, description="an integer from 0 to max_tokens")
    use_beam_search: bool = Field(False, description="true or false")
    stream: bool = Field(False, description="true or false")
    stream_options: StreamOptions | None = Field(None, description='{"include_usage": bool}')
    skip_special_tokens: bool = Field(False, description="true or false")
    ignore_eos: bool = Field(False, description="true or false")
    structured_outputs: StructuredOutputs | None = Field(
        None,
        description=f'{{"choice": [1 to {MAX_CHOICES} strings of 1 to {MAX_CHOICE_CHARS} '
        "characters]}",
    )
    guided_choice: list[str] | None = Field(
        None, description=f"1 to {MAX_CHOICES} strings of 1 to {MAX_CHOICE_CHARS} characters"
    )
    num_beam_groups: int = Field(
        1, ge=1, le=MAX_N, description=f"an integer from 1 to {MAX_N} that divides n"
    )
    diversity_penalty: float = Field(0.0, ge=0.0, le=100.0, description="a number from 0 to 100")
    penalty_alpha: float = Field(0.0, ge=0.0, le=1.0, description="a number from 0 to 1")
    # OpenAI fields the agent does not implement: only their neutral values
    presence_penalty: float | None = Field(None, description="0 (not supported)")
    frequency_penalty: float | None = Field(None, description="0 (not supported)")
    echo: bool | None = Field(None, description="false (not supported)")
    suffix: str | None = Field(None, description="leave out (not supported)")

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_defaults(cls, body: Any) -> Any:
        """``null`` means "the default", as in OpenAI's API."""
        if isinstance(body, dict):
            return {k: v for k, v in body.items() if v is not None}
        return body

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        return check_model(value)

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt_shape(cls, value: Any) -> Any:
        def ids(p: Any) -> bool:
            return isinstance(p, list) and all(
                isinstance(t, int) and not isinstance(t, bool) for t in p
            )

        if not (
            isinstance(value, str)
            or ids(value)
            or (isinstance(value, list) and all(isinstance(p, str) or ids(p) for p in value))
        ):
            raise fail(
                "prompt",
                "prompt must be a string, a list of strings, a list of token ids (integers) "
                "or a list of such lists",
            )
        return value

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, value: float | None) -> float | None:
        if value is None or value == 0:
            return value
        if 0 < value < MIN_TEMPERATURE:
            raise fail(
                "temperature",
                f"temperature={value} is too small to sample with: use 0 for greedy decoding, "
                f"or {MIN_TEMPERATURE} to {MAX_TEMPERATURE}",
            )
        if not MIN_TEMPERATURE <= value <= MAX_TEMPERATURE:  # also NaN
            raise fail(
                "temperature",
                f"temperature={value} is out of range: use 0 for greedy decoding, "
                f"or {MIN_TEMPERATURE} to {MAX_TEMPERATURE}",
            )
        return value

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > MAX_STOPS or any(not 1 <= len(s) <= MAX_STOP_CHARS for s in stops):
            raise fail(
                "stop",
                f"stop must be a string or a list of at most {MAX_STOPS} strings, each 1 to "
                f"{MAX_STOP_CHARS} characters",
            )
        for s in stops:
            check_utf8(s, "stop")
        return value

    @field_validator("stop_token_ids")
    @classmethod
    def _stop_ids(cls, value: list[int] | None) -> list[int] | None:
        if value and any(not 0 <= t < VOCAB_SIZE for t in value):
            raise fail(
                "stop_token_ids", f"stop_token_ids must be token ids from 0 to {VOCAB_SIZE - 1}"
            )
        return value

    @field_validator("logit_bias")
    @classmethod
    def _logit_bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key, bias in (value or {}).items():
            token = key.strip()
            if not (token.isascii() and token.isdigit() and int(token) < VOCAB_SIZE):
                raise fail(
                    "logit_bias",
                    f"logit_bias key {short(key)} is not a token id: use 0 to {VOCAB_SIZE - 1}",
                )
            if not -100 <= bias <= 100:  # also NaN
                raise fail("logit_bias", "logit_bias values must be between -100 and 100")
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: Any) -> Any:
        prompts = _prompt_list(value)
        if not prompts or len(prompts) > MAX_PROMPTS:
            raise fail("prompt", f"prompt must hold 1 to {MAX_PROMPTS} prompts")
        for p in prompts:
            if len(p) == 0:
                raise fail("prompt", "prompt is empty: give at least one character or token")
            if isinstance(p, str):
                check_utf8(p, "prompt")
            elif any(not 0 <= t < VOCAB_SIZE for t in p):
                raise fail("prompt", f"token ids must be between 0 and {VOCAB_SIZE - 1}")
        return value

    @model_validator(mode="after")
    def _together(self) -> CompletionRequest:
        self._check_neutral()
        truncating = self.truncate_prompt_tokens is not None
        for p in self.prompts:
            if isinstance(p, str) and len(p) > MAX_PROMPT_CHARS and not truncating:
                raise fail(
                    "prompt",
                    f"the prompt is {len(p)} characters: at most {MAX_PROMPT_CHARS} are "
                    f"accepted (GALACTICA reads {CONTEXT_LENGTH} tokens); shorten it or set "
                    "truncate_prompt_tokens to keep its end",
                )
            limit = MAX_TRUNCATED_PROMPT_IDS if truncating else MAX_PROMPT_IDS
            if isinstance(p, list) and len(p) > limit:
                raise fail("prompt", f"the prompt is {len(p)} tokens: at most {limit}")
        if self.min_tokens and self.min_tokens > self.max_tokens:
            raise fail("min_tokens", "min_tokens must be between 0 and max_tokens")
        if self.best_of not in (None, self.n):
            raise fail("best_of", "best_of is not supported (use n, or use_beam_search)")
        if self.structured_outputs is not None and self.guided_choice is not None:
            raise fail(
                "guided_choice",
                "give structured_outputs.choice or guided_choice (the older name), not both",
            )
        if self.structured_outputs is not None:
            if self.structured_outputs.choice is None:
                raise fail("structured_outputs", 'structured_outputs supports "choice" only')
            _check_choices(self.structured_outputs.choice, "structured_outputs.choice")
        _check_choices(self.guided_choice, "guided_choice")
        groups = self.num_beam_groups
        if groups > 1 and (
            not self.use_beam_search or self.n % groups or self.diversity_penalty <= 0
        ):
            raise fail(
                "num_beam_groups",
                "num_beam_groups > 1 needs use_beam_search, an n it divides "
                f"(n={self.n}) and diversity_penalty > 0 (else every group is the same)",
            )
        greedy = self.temperature == 0 or self.use_beam_search
        contrastive = self.penalty_alpha > 0 and self.top_k > 1 and greedy
        if contrastive and (self.n > 1 or self.use_beam_search):
            raise fail(
                "penalty_alpha",
                "contrastive search (penalty_alpha > 0, top_k > 1, greedy) gives one "
                "sequence: use n=1 and no beams",
            )
        return self

    def _check_neutral(self) -> None:
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name) not in (None, 0):
                raise fail(name, f"{name} is not supported by this server; leave it out")
        if self.echo:
            raise fail("echo", "echo is not supported by this server; leave it out")
        if self.suffix is not None:
            raise fail("suffix", "suffix is not supported by this server; leave it out")

    # ---- normalised views -------------------------------------------------------------

    @property
    def prompts(self) -> list[str | list[int]]:
        return _prompt_list(self.prompt)

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    @property
    def bias(self) -> dict[int, float]:
        return {int(k): float(v) for k, v in (self.logit_bias or {}).items()}

    @property
    def choices(self) -> list[str] | None:
        if self.structured_outputs is not None:
            return self.structured_outputs.choice
        return self.guided_choice

    @property
    def beams(self) -> int:
        return self.n if self.use_beam_search else 1

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


def _prompt_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if value and all(isinstance(t, int) for t in value):
        return [value]
    return list(value)


def parse_completion(body: Any) -> CompletionRequest:
    """Validate a ``/v1/completions`` body; raise :class:`RequestError` naming the bad field."""
    return parse_body(CompletionRequest, body)


# ------------------------------------------------------------------------ the replies


class Logprobs(BaseModel):
    """OpenAI's legacy logprobs object."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: Logprobs | None = None
    finish_reason: str | None = None  # "stop", "length", "cancelled"; None while streaming


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionResponse(BaseModel):
    """The reply to a whole (non-streamed) completion."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class CompletionChunk(BaseModel):
    """One SSE event of a streamed completion (the last may carry only ``usage``)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int | None = None
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
