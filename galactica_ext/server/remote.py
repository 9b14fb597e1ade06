"""The remote backend: an OpenAI-compatible server the admin configured (vLLM, ...)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..client import AgentUnavailable, AsyncCompletionsClient, ClientError
from .config import Remote
from .state import Backend, Report, ServiceState

#: how long a remote server's answer to /models stays fresh (seconds)
REMOTE_TTL = 30.0


def remote_failure(remote: Remote, err: ClientError) -> str:
    """One sentence on a remote that failed, never its response body (which is not ours to
    show: it may be anything the remote chose to send)."""
    if isinstance(err, AgentUnavailable):
        cause = err.__cause__
        why = f" ({type(cause.__cause__ or cause).__name__})" if cause is not None else ""
        return f"remote server {remote.name} ({remote.url}): cannot reach it{why}"
    status = getattr(err, "status", None)
    code = f"HTTP {status}" if status else "a malformed answer"
    return (
        f"remote server {remote.name} ({remote.url}) answered {code}: it is failing, refuses "
        "the configured key, or is not an OpenAI-compatible completions server"
    )


class RemoteBackend(Backend):
    """A configured remote server; its key goes to its own URL only. It serves the model it
    was started with (its first ``/v1/models`` entry): loading is not asked of it."""

    kind = "remote"

    def __init__(self, remote: Remote, report: Report, current: Callable[[], ServiceState]) -> None:
        self.remote = remote
        self._report, self._current = report, current
        self._client = AsyncCompletionsClient(remote.url, remote.api_key)
        self._model: str | None = None
        self._checked = 0.0
        self._closed = False

    @property
    def stale(self) -> bool:
        """Whether its model list should be read again."""
        return time.monotonic() - self._checked > REMOTE_TTL

    async def check(self, force: bool = False) -> None:
        """Read the remote's models: ready (serving the first), or failed (in one sentence)."""
        if not force and not self.stale:
            return
        self._checked = time.monotonic()
        if self._current().state != "ready":
            connecting = {"phase": "connect", "fraction": 0.0}
            self._report(self._current().but(state="starting", progress=connecting, error=None))
        try:
            models = await self._client.models()
        except ClientError as err:
            if not self._closed:
                failure = remote_failure(self.remote, err)
                self._report(self._current().but(state="failed", error=failure, progress=None))
            return
        if not self._closed:
            self._model = models[0].get("id") if models else None
            self._report(ServiceState(state="ready", model=self._model or self.remote.url))

    async def start(self) -> None:
        await self.check(force=True)

    async def load(self, options: dict[str, Any]) -> None:
        return None  # a remote serves what it was started with

    async def unload(self) -> None:
        return None

    async def prepare(self) -> None:
        await self.check()

    def client(self) -> tuple[AsyncCompletionsClient, str | None]:
        return self._client, self._model

    def url(self) -> str | None:
        return self.remote.url

    async def shutdown(self) -> None:
        self._closed = True
        await self._client.aclose()
