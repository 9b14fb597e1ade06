"""What the browser is told about the model (:class:`ServiceState`), and what every model
backend offers the service (:class:`Backend`): the local agent or a remote server."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..client import AsyncCompletionsClient

State = Literal["stopped", "starting", "loading", "ready", "failed"]

#: the agent's health ``status`` -> the browser's ``state``
HEALTH_STATES: dict[str, State] = {
    "empty": "stopped",
    "stopped": "stopped",
    "starting": "starting",
    "loading": "loading",
    "ready": "ready",
    "failed": "failed",
}


class ModelUnavailable(RuntimeError):
    """No model can serve the request (stopped, failed, unreachable, or turned off)."""


@dataclass(frozen=True)
class Placement:
    """Where the model runs (unknown for remote servers)."""

    device: str | None = None
    dtype: str | None = None
    memory_bytes: int | None = None


@dataclass(frozen=True)
class ServiceState:
    """The model's state as ``GET /galactica/status`` reports it (changed by replacing it)."""

    state: State = "stopped"
    model: str = ""
    placement: Placement = field(default_factory=Placement)
    progress: dict[str, Any] | None = None
    error: str | None = None

    def but(self, **changes: Any) -> ServiceState:
        """This state with ``changes``."""
        return replace(self, **changes)

    def document(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "model": self.model,
            "device": self.placement.device,
            "dtype": self.placement.dtype,
            "memory_bytes": self.placement.memory_bytes,
            "progress": self.progress,
            "error": self.error,
        }


#: how a backend reports a new state to the service
Report = Callable[[ServiceState], None]


class Backend(abc.ABC):
    """A model backend: reports its state through ``report``, loads, unloads, serves."""

    kind: Literal["local", "remote"]

    @abc.abstractmethod
    async def start(self) -> None:
        """Begin (when the server starts, or when the browser switches to this backend)."""

    @abc.abstractmethod
    async def load(self, options: dict[str, Any]) -> None:
        """Load ``options["model"]`` (with dtype, device, quantize), as far as it can."""

    @abc.abstractmethod
    async def unload(self) -> None:
        """Free the model (or stop using the server)."""

    @abc.abstractmethod
    async def prepare(self) -> None:
        """Before a task: start what the configuration allows, or raise ModelUnavailable."""

    @abc.abstractmethod
    def client(self) -> tuple[AsyncCompletionsClient, str | None]:
        """The client to generate with, and the model id to send (None: the server's)."""

    @abc.abstractmethod
    def url(self) -> str | None:
        """The completions server's URL, when there is one."""

    @abc.abstractmethod
    async def shutdown(self) -> None:
        """The server stops (or the browser switched away): release everything."""

    def unreachable(self, err: Exception) -> ModelUnavailable:
        """The server's words for a completions server that does not answer (the client's
        own message tells a kernel user how to start an agent, which does not apply here)."""
        cause = err.__cause__
        why = f" ({type(cause.__cause__ or cause).__name__})" if cause is not None else ""
        return ModelUnavailable(f"cannot reach {self.url()}{why}")
