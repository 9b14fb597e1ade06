"""``/health`` and ``/v1/load`` documents, and the results of the tasks."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import check_model, parse_body
from .limits import DEVICE_PATTERN, DTYPES, MAX_MODEL_BYTES

# ----------------------------------------------------------------------- health, load

HealthStatus = Literal["empty", "loading", "ready", "failed"]


class Progress(BaseModel):
    phase: str
    fraction: float


class QueueLoad(BaseModel):
    running: int = 0
    waiting: int = 0


class PrefixCacheStats(BaseModel):
    """The agent's prefix cache: reuse so far, and what it holds against its budget."""

    hits: int = 0
    reused_tokens: int = 0
    #: bytes of key/value caches held now, and the most it may hold (0: prefix reuse is off)
    bytes: int = 0
    max_bytes: int = 0
    #: prompts (documents) whose caches are held
    entries: int = 0


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
    #: torch's CPU threads for each kind of work ("step", "prompt"), as the engine chose them
    #: by measuring (engine/thread_tuner.py); empty without a model
    threads: dict[str, int] = Field(default_factory=dict)
    #: requests cancelled before they finished because their client disconnected
    disconnected: int = 0
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
        return check_model(value)

    def options(self) -> dict[str, str]:
        """The load options given (dtype, device, quantize)."""
        return {k: v for k in ("dtype", "device", "quantize") if (v := getattr(self, k))}


def parse_load(body: Any) -> LoadRequest:
    """Validate a ``/v1/load`` body; raise :class:`RequestError` naming the bad field."""
    return parse_body(LoadRequest, body)


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
