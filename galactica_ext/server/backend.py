"""The model service: what the handlers ask for status, loading and generation.

It holds the model's state (:class:`~.state.ServiceState`) and one backend behind the
:class:`~.state.Backend` interface: the local agent (:mod:`.local`) or a remote server the
admin configured (:mod:`.remote`), both spoken to through
:class:`galactica_ext.client.AsyncCompletionsClient`. A browser switches among configured
remotes by name only. Nothing here blocks the event loop or imports torch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from .. import tasks
from ..client import AgentUnavailable, request_payload
from ..specs import resolve_model_spec
from ..tasks import GenerationRequest
from .config import DEFAULT_REMOTE, Galactica
from .local import NO_MODEL, LocalAgentBackend
from .remote import RemoteBackend
from .state import Backend, ModelUnavailable, ServiceState

__all__ = ["ModelService", "ModelUnavailable"]

#: what a browser may send to ``POST /galactica/model``
LOAD_FIELDS = frozenset({"model", "url", "remote", "dtype", "device", "quantize"})


def one_line(err: BaseException) -> str:
    """An exception as the one sentence a user sees (its first line; the log has the rest)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def resolve_quietly(spec: str | None) -> str:
    try:
        return resolve_model_spec(spec or None)
    except (ValueError, FileNotFoundError):
        return spec or ""


#: what a task gets after the user unloaded the model on purpose
UNLOADED = (
    "the model was unloaded: load one (the GALACTICA sidebar's Load, or %galactica load) "
    "to use GALACTICA again"
)


class ModelService:
    """Owns the model backend for the Jupyter server and reports its status."""

    def __init__(self, config: Galactica, log: Any) -> None:
        self.config = config
        self.log = log
        #: the local agent's load options (kept while a remote serves)
        self.options: dict[str, Any] = {
            "model": config.model or None,
            "dtype": config.dtype,
            "device": config.device,
            "quantize": config.quantize or None,
        }
        #: the remote servers the admin configured; the browser picks one by name
        self.remotes = config.remote_servers()
        self.state = ServiceState(model=resolve_quietly(config.model))
        #: the user unloaded the model on purpose: nothing starts it again until they load one
        self.unloaded = False
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        default = self.remotes.get(DEFAULT_REMOTE)
        self.backend: Backend = self._remote(default.name) if default else self._local()

    def _local(self) -> LocalAgentBackend:
        return LocalAgentBackend(
            self.config, self.log, self.options, self._report, self._current, self._background
        )

    def _remote(self, name: str) -> RemoteBackend:
        return RemoteBackend(self.remotes[name], self._report, self._current)

    async def _switch(self, backend: Backend) -> None:
        old, self.backend = self.backend, backend
        await old.shutdown()

    # state ------------------------------------------------------------------------------

    def _current(self) -> ServiceState:
        return self.state

    def _report(self, state: ServiceState) -> None:
        self.state = state
        self._changed.set()

    async def changed(self, timeout: float) -> None:
        """Wait until the status changes (or ``timeout`` seconds pass)."""
        self._changed.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def status(self) -> dict[str, Any]:
        """The status document of ``GET /galactica/status``."""
        backend = self.backend
        if isinstance(backend, RemoteBackend) and backend.stale:
            self._background(backend.check())
        remote = backend.remote.name if isinstance(backend, RemoteBackend) else None
        return {
            **self.state.document(),
            "backend": backend.kind,
            "url": backend.url(),
            "remote": remote,
            "remotes": sorted(self.remotes),
            "unloaded": self.unloaded,
        }

    # life cycle -------------------------------------------------------------------------

    async def on_server_started(self) -> None:
        """Called once the event loop runs: start what the configuration says."""
        await self.backend.start()

    async def shutdown(self) -> None:
        """Stop our agent and close our clients (the server is stopping)."""
        for task in list(self._tasks):
            task.cancel()
        await self.backend.shutdown()

    def _background(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            err = task.exception()
            self.log.error("galactica_ext: %s", err, exc_info=err)  # the traceback: the log only
            self._report(self.state.but(state="failed", error=one_line(err), progress=None))

    # load and unload ------------------------------------------------------------------

    def _remote_names(self) -> str:
        names = ", ".join(sorted(self.remotes))
        return f"one of {names}" if names else "none is configured"

    async def load(self, body: dict[str, Any]) -> dict[str, Any]:
        """Load (or switch to) a model, or switch to a configured remote; returns at once.

        Raises ValueError (or FileNotFoundError) for bad input, CompletionError when the
        agent refuses (e.g. 409 while another load runs), ModelUnavailable when it is gone.
        """
        self.unloaded = False
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
            await self._switch(self._remote(choice))
            await self.backend.start()
            return self.status()
        if ("url" in body or "remote" in body) and self.backend.kind != "local":
            await self._switch(self._local())  # empty: back to the local agent
            self._report(self.state.but(state="stopped", error=None, progress=None))
            if "model" not in body:
                return self.status()
        options = self._options(body)
        self.options = options
        self._report(self.state.but(model=resolve_quietly(options["model"])))
        await self.backend.load(options)
        return self.status()

    def _options(self, body: dict[str, Any]) -> dict[str, Any]:
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
        return options

    async def unload(self) -> dict[str, Any]:
        """Free the model: stop our agent, ask a reused agent to unload, or stop using the
        remote (back to the local agent, stopped). Nothing loads a model again until the user
        asks for one (:meth:`load`)."""
        self.unloaded = True
        if self.backend.kind == "remote":
            await self._switch(self._local())
            model = resolve_quietly(self.options.get("model"))
            self._report(ServiceState(model=model))
        else:
            await self.backend.unload()
        return self.status()

    # generation -------------------------------------------------------------------------

    async def wait_ready(self) -> AsyncIterator[dict[str, Any]]:
        """Start the model if the configuration allows it and wait until it is ready,
        yielding the status whenever it changes. Raises ModelUnavailable, at once after the
        user unloaded the model on purpose (until they load one)."""
        if self.unloaded and self.state.state != "ready":
            raise ModelUnavailable(UNLOADED)
        await self.backend.prepare()
        last = None
        while self.state.state != "ready":
            if self.state.state == "failed":
                raise ModelUnavailable(self.state.error or "the model failed to load")
            if self.state.state == "stopped" and not self._tasks:
                raise ModelUnavailable(NO_MODEL)
            status = self.status()
            if status != last:
                yield status
                last = status
            await self.changed(1.0)

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
        backend = self.backend
        client, model = backend.client()
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
            raise backend.unreachable(err) from err
        prompt_tokens = (usage or {}).get("prompt_tokens")
        truncated = prompt_tokens is not None and prompt_tokens >= request.truncate_prompt_tokens
        return tasks.parse(request, outputs or [""], truncated)
