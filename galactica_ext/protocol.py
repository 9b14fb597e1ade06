"""The wire schema: OpenAI's legacy completions (with vLLM's extras), ``/health``, ``/v1/load``
and the task results, as pydantic models. Every limit is written here once; torch-free.

The agent validates requests with these models (:func:`parse_completion`, :func:`parse_load`);
clients and the server extension build payloads and parse replies with them. A bad request
raises :class:`RequestError`, whose :meth:`~RequestError.body` is OpenAI's error object naming
the field (``param``) and what is accepted.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .specs import CONTEXT_LENGTH

# ------------------------------------------------------------------------------- limits

#: GALACTICA's vocabulary (every size): token ids are 0..VOCAB_SIZE-1
VOCAB_SIZE = 50_000
#: choices per request (sampled, or beams): the engine batches at most this many per prompt
MAX_N = 16
MAX_PROMPTS = 16
MAX_STOPS = 16
MAX_STOP_CHARS = 512
MAX_STOP_TOKEN_IDS = 64
MAX_LOGIT_BIAS = 300  # OpenAI's own limit
MAX_LOGPROBS = 20
MAX_MODEL_BYTES = 255
MAX_CHOICES = 20_000
MAX_CHOICE_CHARS = 512
#: The prompt is checked in characters before it is tokenised, so that no request makes the
#: agent tokenise megabytes. GALACTICA's context is 2,048 tokens; its tokens average about
#: 4 characters and very few are longer than 32, so 64 KiB of text is always more than a full
#: context. A longer text is accepted only with ``truncate_prompt_tokens`` (the agent then
#: tokenises just its last MAX_PROMPT_CHARS characters: the tokens kept are the same).
MAX_PROMPT_CHARS = 64 * 1024
#: token-id prompts: a full context; more only with ``truncate_prompt_tokens``
MAX_PROMPT_IDS = CONTEXT_LENGTH
MAX_TRUNCATED_PROMPT_IDS = 32 * CONTEXT_LENGTH
#: temperatures between 0 and this sample from a distribution that float32 can't represent
#: (3e-39 made every logit infinite); OpenAI's and vLLM's floor is the same 0.01
MIN_TEMPERATURE = 0.01
MAX_TEMPERATURE = 2.0
MIN_TOP_P = 1e-3
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # vLLM's range for seed
#: The request body, bytes. A full context of text is ~10 KB and the longest prompt accepted
#: 64 KiB (256 KiB as JSON escapes); a grounded citation's choice list of 20,000 library
#: entries ("Title, Author", ~70 characters each) is ~1.5 MB. 4 MiB holds both with room.
MAX_BODY_BYTES = 4 * 1024 * 1024
#: nesting of JSON bodies (ours need 3 levels)
MAX_JSON_DEPTH = 32
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]{1,2})?)$"

# ------------------------------------------------------------------------------- errors


class RequestError(ValueError):
    """A bad request: the message says what was wrong and what is accepted."""

    def __init__(
        self, message: str, param: str | None = None, status: int = 400, code: str | None = None
    ):
        super().__init__(message)
        self.param = param
        self.status = status
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(str(self), self.param, "invalid_request_error", self.code)


class ErrorDetail(BaseModel):
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """OpenAI's (and vLLM's) error reply, also sent as an SSE event when a stream fails."""

    error: ErrorDetail


def error_body(
    message: str,
    param: str | None = None,
    kind: str = "invalid_request_error",
    code: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _fail(param: str, message: str) -> PydanticCustomError:
    """A validation error that names its field (``param``) and says what is accepted."""
    return PydanticCustomError("bad_field", message, {"param": param})


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def request_error(err: ValidationError, model: type[BaseModel]) -> RequestError:
    """The first problem of a :class:`ValidationError`, as a RequestError naming its field."""
    first = err.errors(include_url=False)[0]
    ctx = first.get("ctx") or {}
    if first["type"] == "bad_field":
        return RequestError(first["msg"], ctx.get("param"))
    loc = [str(part) for part in first["loc"]]
    name = loc[0] if loc else None
    # a nested model's field is named with dots (structured_outputs.choice)
    field = model.model_fields.get(name) if name else None
    param = name
    if field is not None and len(loc) > 1 and loc[1] in _nested_fields(field.annotation):
        param = f"{name}.{loc[1]}"
    if first["type"] == "missing":
        message = f"{param} is required"
    elif first["type"] == "extra_forbidden":
        message = f"{'.'.join(loc)} is not supported by this server; leave it out"
    else:
        message = f"{param}={_short(first.get('input'))} is not accepted: {first['msg']}"
    accepted = field.description if field is not None else None
    if accepted and first["type"] != "extra_forbidden":
        message += f" (accepted: {accepted})"
    return RequestError(message, param)


def _nested_fields(annotation: Any) -> set[str]:
    for arg in (*getattr(annotation, "__args__", ()), annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return set(arg.model_fields)
    return set()


# ------------------------------------------------------------------------ the request


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
        raise _fail(param, f"{param} must hold 1 to {MAX_CHOICES} strings, got {len(value)}")
    for choice in value:
        if not 1 <= len(choice) <= MAX_CHOICE_CHARS:
            raise _fail(param, f"each of {param} must be 1 to {MAX_CHOICE_CHARS} characters long")
        _utf8(choice, param)
    return value


def _utf8(text: str, param: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(
            param, f"{param} holds a lone surrogate (not valid Unicode): send UTF-8 text"
        ) from None


def _check_model(value: str | None) -> str | None:
    if value is not None:
        _utf8(value, "model")
        if len(value.encode("utf-8")) > MAX_MODEL_BYTES:
            raise _fail("model", f"model is longer than {MAX_MODEL_BYTES} bytes")
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
        return _check_model(value)

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
            raise _fail(
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
            raise _fail(
                "temperature",
                f"temperature={value} is too small to sample with: use 0 for greedy decoding, "
                f"or {MIN_TEMPERATURE} to {MAX_TEMPERATURE}",
            )
        if not MIN_TEMPERATURE <= value <= MAX_TEMPERATURE:  # also NaN
            raise _fail(
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
            raise _fail(
                "stop",
                f"stop must be a string or a list of at most {MAX_STOPS} strings, each 1 to "
                f"{MAX_STOP_CHARS} characters",
            )
        for s in stops:
            _utf8(s, "stop")
        return value

    @field_validator("stop_token_ids")
    @classmethod
    def _stop_ids(cls, value: list[int] | None) -> list[int] | None:
        if value and any(not 0 <= t < VOCAB_SIZE for t in value):
            raise _fail(
                "stop_token_ids", f"stop_token_ids must be token ids from 0 to {VOCAB_SIZE - 1}"
            )
        return value

    @field_validator("logit_bias")
    @classmethod
    def _logit_bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key, bias in (value or {}).items():
            token = key.strip()
            if not (token.isascii() and token.isdigit() and int(token) < VOCAB_SIZE):
                raise _fail(
                    "logit_bias",
                    f"logit_bias key {_short(key)} is not a token id: use 0 to {VOCAB_SIZE - 1}",
                )
            if not -100 <= bias <= 100:  # also NaN
                raise _fail("logit_bias", "logit_bias values must be between -100 and 100")
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: Any) -> Any:
        prompts = _prompt_list(value)
        if not prompts or len(prompts) > MAX_PROMPTS:
            raise _fail("prompt", f"prompt must hold 1 to {MAX_PROMPTS} prompts")
        for p in prompts:
            if len(p) == 0:
                raise _fail("prompt", "prompt is empty: give at least one character or token")
            if isinstance(p, str):
                _utf8(p, "prompt")
            elif any(not 0 <= t < VOCAB_SIZE for t in p):
                raise _fail("prompt", f"token ids must be between 0 and {VOCAB_SIZE - 1}")
        return value

    @model_validator(mode="after")
    def _together(self) -> CompletionRequest:
        self._check_neutral()
        truncating = self.truncate_prompt_tokens is not None
        for p in self.prompts:
            if isinstance(p, str) and len(p) > MAX_PROMPT_CHARS and not truncating:
                raise _fail(
                    "prompt",
                    f"the prompt is {len(p)} characters: at most {MAX_PROMPT_CHARS} are "
                    f"accepted (GALACTICA reads {CONTEXT_LENGTH} tokens); shorten it or set "
                    "truncate_prompt_tokens to keep its end",
                )
            limit = MAX_TRUNCATED_PROMPT_IDS if truncating else MAX_PROMPT_IDS
            if isinstance(p, list) and len(p) > limit:
                raise _fail("prompt", f"the prompt is {len(p)} tokens: at most {limit}")
        if self.min_tokens and self.min_tokens > self.max_tokens:
            raise _fail("min_tokens", "min_tokens must be between 0 and max_tokens")
        if self.best_of not in (None, self.n):
            raise _fail("best_of", "best_of is not supported (use n, or use_beam_search)")
        if self.structured_outputs is not None and self.guided_choice is not None:
            raise _fail(
                "guided_choice",
                "give structured_outputs.choice or guided_choice (the older name), not both",
            )
        if self.structured_outputs is not None:
            if self.structured_outputs.choice is None:
                raise _fail("structured_outputs", 'structured_outputs supports "choice" only')
            _check_choices(self.structured_outputs.choice, "structured_outputs.choice")
        _check_choices(self.guided_choice, "guided_choice")
        groups = self.num_beam_groups
        if groups > 1 and (
            not self.use_beam_search or self.n % groups or self.diversity_penalty <= 0
        ):
            raise _fail(
                "num_beam_groups",
                "num_beam_groups > 1 needs use_beam_search, an n it divides "
                f"(n={self.n}) and diversity_penalty > 0 (else every group is the same)",
            )
        return self

    def _check_neutral(self) -> None:
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name) not in (None, 0):
                raise _fail(name, f"{name} is not supported by this server; leave it out")
        if self.echo:
            raise _fail("echo", "echo is not supported by this server; leave it out")
        if self.suffix is not None:
            raise _fail("suffix", "suffix is not supported by this server; leave it out")

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
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    try:
        return CompletionRequest.model_validate(body)
    except ValidationError as err:
        raise request_error(err, CompletionRequest) from None


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


# ----------------------------------------------------------------------- health, load

HealthStatus = Literal["empty", "loading", "ready", "failed"]


class Progress(BaseModel):
    phase: str
    fraction: float


class QueueLoad(BaseModel):
    running: int = 0
    waiting: int = 0


class PrefixCacheStats(BaseModel):
    hits: int = 0
    reused_tokens: int = 0


class Health(BaseModel):
    """``GET /health`` of the agent. ``model`` is the model loaded (or loading); ``serving``
    the one answering completions now (the previous model while a new one loads)."""

    model_config = ConfigDict(extra="ignore")

    status: HealthStatus
    model: str | None = None
    serving: str | None = None
    progress: Progress | None = None
    error: str | None = None
    device: str | None = None
    dtype: str | None = None
    memory_bytes: int | None = None
    queue: QueueLoad = Field(default_factory=QueueLoad)
    prefix_cache: PrefixCacheStats = Field(default_factory=PrefixCacheStats)
    pid: int | None = None
    version: str | None = None


class LoadRequest(BaseModel):
    """A ``POST /v1/load`` body."""

    model_config = ConfigDict(strict=True, extra="ignore")

    model: str | None = Field(
        None,
        description=f"a size (125m, 1.3b, ...), a hub id or a local directory; at most "
        f"{MAX_MODEL_BYTES} bytes",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] | None = Field(
        None, description=", ".join(DTYPES)
    )
    device: str | None = Field(
        None, pattern=DEVICE_PATTERN, description="auto, cpu, cuda or cuda:N"
    )
    quantize: Literal["8bit", "4bit"] | None = Field(None, description="8bit or 4bit")

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        return _check_model(value)

    def options(self) -> dict[str, str]:
        """The load options given (dtype, device, quantize)."""
        return {k: v for k in ("dtype", "device", "quantize") if (v := getattr(self, k))}


def parse_load(body: Any) -> LoadRequest:
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    try:
        return LoadRequest.model_validate(body)
    except ValidationError as err:
        raise request_error(err, LoadRequest) from None


# ----------------------------------------------------------------------- task results


class CiteSuggestion(BaseModel):
    text: str
    title: str
    author: str | None = None


class CiteResult(BaseModel):
    suggestions: list[CiteSuggestion]
    truncated: bool = False


class TextResult(BaseModel):
    """summarise, complete, ask, work."""

    text: str
    truncated: bool = False


class EquationResult(BaseModel):
    latex: str
    truncated: bool = False
