"""The model service: what the handlers ask for status, loading and generation.

Two backends behind one interface: the local agent (a supervised child process, or an
agent already running for this user) and a remote OpenAI-compatible server (vLLM, ...),
both spoken to through :class:`galactica_ext.client.AsyncCompletionsClient`.
Nothing here blocks the event loop or imports torch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .. import tasks
from ..client import AgentUnavailable, AsyncCompletionsClient, ClientError, request_payload
from ..specs import resolve_model_spec
from ..tasks import GenerationRequest
from .config import DEFAULT_REMOTE, Galactica, Remote
from .supervisor import AgentSupervisor

#: the agent's health ``status`` -> the browser's ``state``
_STATES = {
    "empty": "stopped",
    "stopped": "stopped",
    "starting": "starting",
    "loading": "loading",
    "ready": "ready",
    "failed": "failed",
}
#: how long a remote server's answer to /models stays fresh (seconds)
REMOTE_TTL = 30.0


class ModelUnavailable(RuntimeError):
    """No model can serve the request (stopped, failed, unreachable, or turned off)."""


def unreachable(client: AsyncCompletionsClient, err: AgentUnavailable) -> ModelUnavailable:
    """The server's words for a completions server that does not answer (the client's
    own message tells a kernel user how to start an agent, which does not apply here)."""
    cause = err.__cause__
    why = f" ({type(cause).__name__})" if cause is not None else ""
    return ModelUnavailable(f"cannot reach {client.url}{why}")


def one_line(err: BaseException) -> str:
    """An exception as the one sentence a user sees (its first line; the log has the rest)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def remote_failure(remote: Remote, err: ClientError) -> str:
    """One sentence on a remote that failed, never its response body (which is not ours to
    show: it may be anything the remote chose to send)."""
    if isinstance(err, AgentUnavailable):
        cause = err.__cause__
        why = f" ({type(cause).__name__})" if cause is not None else ""
        return f"remote server {remote.name} ({remote.url}): cannot reach it{why}"
    status = getattr(err, "status", None)
    code = f"HTTP {status}" if status else "a malformed answer"
    return (
        f"remote server {remote.name} ({remote.url}) answered {code}: it is failing, refuses "
        "the configured key, or is not an OpenAI-compatible completions server"
    )


class ModelService:
    """Owns the model backend for the Jupyter server and reports its status."""

    def __init__(self, config: Galactica, log: Any) -> None:
        self.config = config
        self.log = log
        self.options: dict[str, Any] = {
            "model": config.model or None,
            "dtype": config.dtype,
            "device": config.device,
            "quantize": config.quantize or None,
        }
        #: the remote servers the admin configured; the browser picks one by name
        self.remotes = config.remote_servers()
        #: the remote in use (None: the local agent)
        self.remote: Remote | None = self.remotes.get(DEFAULT_REMOTE)
        self.state = "stopped"
        self.model = self._resolve_quietly(config.model)
        self.facts: dict[str, Any] = {"device": None, "dtype": None, "memory_bytes": None}
        self.progress: dict[str, Any] | None = None
        self.error: str | None = None
        self._remote_checked = 0.0
        self._remote_model: str | None = None
        self._remote: AsyncCompletionsClient | None = None
        self._remote_address: Remote | None = None
        #: the model the local agent last said it serves (sent with each completion)
        self._agent_model: str | None = None
        self._changed = asyncio.Event()
        self.supervisor = AgentSupervisor(
            log=log,
            on_change=self._on_agent_change,
            command=list(config.agent_command),
            reuse=config.reuse_agent,
            max_restarts=config.max_restarts,
            backoff=config.restart_backoff,
            startup_timeout=config.startup_timeout,
        )
        self._tasks: set[asyncio.Task[Any]] = set()

    @staticmethod
    def _resolve_quietly(spec: str | None) -> str:
        try:
            return resolve_model_spec(spec or None)
        except (ValueError, FileNotFoundError):
            return spec or ""

    # life cycle -------------------------------------------------------------------------

    async def on_server_started(self) -> None:
        """Called once the event loop runs: start what the configuration says."""
        if self.remote_url:
            await self._check_remote(force=True)
        elif self.config.start == "server":
            self._background(self.supervisor.start(self.options))
        elif self.config.reuse_agent:
            # an agent already running for this user is shown (and used) at once
            self.supervisor.attach()

    async def shutdown(self) -> None:
        """Stop our agent (the server is stopping)."""
        await self.supervisor.stop()
        if self._remote is not None:
            await self._remote.aclose()
            self._remote = None

    def _background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            err = task.exception()
            self.log.error("galactica_ext: %s", err, exc_info=err)  # the traceback: the log only
            self._set(state="failed", error=one_line(err), progress=None)

    # status -----------------------------------------------------------------------------

    @property
    def remote_url(self) -> str:
        return self.remote.url if self.remote is not None else ""

    @property
    def backend(self) -> str:
        return "remote" if self.remote_url else "local"

    def status(self) -> dict[str, Any]:
        """The status document of ``GET /galactica/status``."""
        if self.remote_url and time.monotonic() - self._remote_checked > REMOTE_TTL:
            self._background(self._check_remote())
        url = self.remote_url or (self.supervisor.info.url if self.supervisor.info else None)
        return {
            "state": self.state,
            "model": self.model,
            "device": self.facts.get("device"),
            "dtype": self.facts.get("dtype"),
            "memory_bytes": self.facts.get("memory_bytes"),
            "progress": self.progress,
            "error": self.error,
            "backend": self.backend,
            "url": url,
            "remote": self.remote.name if self.remote is not None else None,
            "remotes": sorted(self.remotes),
        }

    def _set(self, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self, key, value)
        self._changed.set()

    async def changed(self, timeout: float) -> None:
        """Wait until the status changes (or ``timeout`` seconds pass)."""
        self._changed.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def _on_agent_change(self, health: dict[str, Any]) -> None:
        if self.remote_url:
            return
        state = _STATES.get(str(health.get("status")), "failed")
        self._agent_model = health.get("model") if state == "ready" else None
        model = health.get("model") or self.model
        self._set(
            state=state,
            model=model,
            progress=health.get("progress") if state in ("starting", "loading") else None,
            error=health.get("error"),
            facts={k: health.get(k) for k in ("device", "dtype", "memory_bytes")},
        )

    async def _check_remote(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._remote_checked < REMOTE_TTL:
            return
        self._remote_checked = time.monotonic()
        remote = self.remote
        if remote is None:
            return
        url = remote.url
        if self.state not in ("ready",):
            self._set(state="starting", progress={"phase": "connect", "fraction": 0.0}, error=None)
        client = self._remote_client()
        try:
            models = [m.get("id") for m in await client.models() if isinstance(m, dict)]
        except ClientError as err:
            if remote is self.remote:
                self._set(state="failed", error=remote_failure(remote, err), progress=None)
            return
        if remote is self.remote:
            self._remote_model = models[0] if models else None
            self._set(
                state="ready",
                model=self._remote_model or url,
                error=None,
                progress=None,
                facts={"device": None, "dtype": None, "memory_bytes": None},
            )

    def _remote_names(self) -> str:
        names = ", ".join(sorted(self.remotes))
        return f"one of {names}" if names else "none is configured"

    # load and unload ------------------------------------------------------------------

    async def load(self, body: dict[str, Any]) -> dict[str, Any]:
        """Load (or switch to) a model, or switch to a remote server; returns at once.

        Raises ValueError (or FileNotFoundError) for bad input, CompletionError when the
        agent refuses (e.g. 409 while another load runs), ModelUnavailable when it is gone.
        """
        if body.get("url"):
            raise ValueError(
                "url: remote servers are set by the server's configuration "
                "(c.Galactica.remote_url, c.Galactica.remotes); choose one by name with "
                f'"remote": {self._remote_names()}'
            )
        choice = body.get("remote")
        if choice is not None and not isinstance(choice, str):
            raise ValueError(
                f"remote must be the name of a configured remote: {self._remote_names()}"
            )
        if choice:
            if choice not in self.remotes:
                raise ValueError(
                    f"remote {choice[:100]!r} is not configured: {self._remote_names()}"
                )
            if self.supervisor.owned:
                await self.supervisor.stop()
            self.remote = self.remotes[choice]
            self._remote_checked = 0.0
            await self._check_remote(force=True)
            return self.status()
        if "url" in body or "remote" in body:  # empty: back to the local agent
            self.remote = None
            self._set(state="stopped", error=None, progress=None)
        options = dict(self.options)
        for key in ("dtype", "device", "quantize"):
            if key in body:
                value = body[key]
                if value is not None and not isinstance(value, str):
                    raise ValueError(f"{key} must be a string")
                options[key] = value or None
        if "model" in body or not ({"url", "remote"} & set(body)):
            spec = body.get("model")
            if spec is not None and not isinstance(spec, str):
                raise ValueError("model must be a string")
            resolve_model_spec(spec or None)  # raises ValueError/FileNotFoundError
            options["model"] = spec or None
        if options.get("quantize") not in (None, "8bit", "4bit"):
            raise ValueError("quantize must be 8bit or 4bit")
        self.options = options
        self.model = self._resolve_quietly(options["model"])
        if self.remote_url:
            return self.status()
        client = self.supervisor.client
        if self.supervisor.running and client is not None:
            try:
                health = await client.load(
                    options["model"] or self.model,
                    dtype=options.get("dtype"),
                    device=options.get("device"),
                    quantize=options.get("quantize"),
                )
            except AgentUnavailable as err:
                raise unreachable(client, err) from err
            self._on_agent_change(health)
            self.supervisor.poke()
        else:
            self._set(
                state="starting", error=None, progress={"phase": "start agent", "fraction": 0.0}
            )
            self._background(self.supervisor.start(options))
        return self.status()

    async def unload(self) -> dict[str, Any]:
        """Free the model: stop our agent, or ask a reused agent to unload."""
        if self.remote is not None:
            self.remote = None
            self._set(
                state="stopped",
                error=None,
                progress=None,
                model=self._resolve_quietly(self.options.get("model")),
            )
        elif self.supervisor.owned or not self.supervisor.running:
            await self.supervisor.stop()
        elif (client := self.supervisor.client) is not None:
            try:
                self._on_agent_change(await client.unload())
            except AgentUnavailable as err:
                raise unreachable(client, err) from err
        return self.status()

    # generation -------------------------------------------------------------------------

    async def wait_ready(self) -> AsyncIterator[dict[str, Any]]:
        """Start the model if the configuration allows it and wait until it is ready,
        yielding the status whenever it changes. Raises ModelUnavailable."""
        if self.remote_url:
            await self._check_remote()
        elif self.state == "stopped" or (self.state == "failed" and not self.supervisor.running):
            if self.config.start == "manual" and not self.supervisor.running:
                raise ModelUnavailable("no model is loaded: load one from the GALACTICA sidebar")
            if not self.supervisor.running:
                self._set(
                    state="starting", error=None, progress={"phase": "start agent", "fraction": 0.0}
                )
                self._background(self.supervisor.start(self.options))
            elif self.supervisor.client is not None and self.state == "stopped":
                await self.load({})
        last = None
        while self.state != "ready":
            if self.state == "failed":
                raise ModelUnavailable(self.error or "the model failed to load")
            if self.state == "stopped" and not self._tasks:
                raise ModelUnavailable("no model is loaded: load one from the GALACTICA sidebar")
            status = self.status()
            if status != last:
                yield status
                last = status
            await self.changed(1.0)

    def _remote_client(self) -> AsyncCompletionsClient:
        """The client of the remote in use (a new one, the old one closed, when it changed)."""
        remote = self.remote
        assert remote is not None
        if self._remote is None or self._remote_address != remote:
            if self._remote is not None:
                self._background(self._remote.aclose())
            # the key goes only to the URL the admin configured it with
            self._remote = AsyncCompletionsClient(remote.url, remote.api_key)
            self._remote_address = remote
        return self._remote

    def _client(self) -> tuple[AsyncCompletionsClient, str | None]:
        if self.remote_url:
            return self._remote_client(), self._remote_model
        if self.supervisor.client is None:
            raise ModelUnavailable("the GALACTICA agent is not running")
        return self.supervisor.client, self._agent_model

    async def run(
        self, request: GenerationRequest, on_token: Callable[[int, str], Awaitable[None]]
    ) -> dict[str, Any]:
        """Generate ``request`` and return :func:`tasks.parse`'s result.

        ``on_token(index, text)`` gets each new piece of choice ``index`` as it streams.
        Beam search (citations) is asked for whole, as vLLM does not stream it, and its
        choices are passed on once they are known. Cancel the calling task to cancel the
        generation: the connection to the model server is closed, which stops it there.
        Raises ModelUnavailable (no answer) and CompletionError (an error answer).
        """
        client, model = self._client()
        payload = request_payload(request, model)
        try:
            if payload.get("use_beam_search"):
                response = await client.complete(**payload)
                choices = sorted(response.get("choices") or [], key=lambda c: c.get("index", 0))
                outputs = [c.get("text") or "" for c in choices]
                for index, text in enumerate(outputs):
                    if text:
                        await on_token(index, text)
                usage = response.get("usage")
            else:
                async with client.stream(**payload) as stream:
                    async for chunk in stream:
                        for choice in chunk.get("choices") or []:
                            if choice.get("text"):
                                await on_token(int(choice.get("index", 0)), choice["text"])
                    outputs, usage = stream.outputs, stream.usage
        except AgentUnavailable as err:
            raise unreachable(client, err) from err
        prompt_tokens = (usage or {}).get("prompt_tokens")
        truncated = prompt_tokens is not None and prompt_tokens >= request.truncate_prompt_tokens
        return tasks.parse(request, outputs or [""], truncated)
