"""The local backend: our agent, a child process supervised here (or an agent that already
runs for this user, reused)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from ..client import AgentUnavailable, AsyncCompletionsClient
from .config import Galactica
from .state import HEALTH_STATES, Backend, ModelUnavailable, Placement, Report, ServiceState
from .supervisor import AgentSupervisor

NO_MODEL = "no model is loaded: load one from the GALACTICA sidebar"
STARTING = {"phase": "start agent", "fraction": 0.0}


class LocalAgentBackend(Backend):
    """Starts, loads through, and stops the local agent, as ``c.Galactica.start`` says."""

    kind = "local"

    def __init__(
        self,
        config: Galactica,
        log: Any,
        options: dict[str, Any],
        report: Report,
        current: Callable[[], ServiceState],
        background: Callable[[Coroutine[Any, Any, Any]], None],
    ) -> None:
        self.config = config
        self.options = dict(options)
        self._report, self._current, self._background = report, current, background
        #: the model the agent last said it serves (sent with each completion)
        self._agent_model: str | None = None
        self.supervisor = AgentSupervisor(
            log=log,
            on_change=self._on_agent_change,
            command=list(config.agent_command),
            reuse=config.reuse_agent,
            max_restarts=config.max_restarts,
            backoff=config.restart_backoff,
            startup_timeout=config.startup_timeout,
        )

    def _on_agent_change(self, health: dict[str, Any]) -> None:
        state = HEALTH_STATES.get(str(health.get("status")), "failed")
        self._agent_model = health.get("model") if state == "ready" else None
        self._report(
            ServiceState(
                state=state,
                model=health.get("model") or self._current().model,
                placement=Placement(
                    health.get("device"), health.get("dtype"), health.get("memory_bytes")
                ),
                progress=health.get("progress") if state in ("starting", "loading") else None,
                error=health.get("error"),
            )
        )

    def _spawn(self) -> None:
        self._report(self._current().but(state="starting", error=None, progress=STARTING))
        self._background(self.supervisor.start(self.options))

    async def start(self) -> None:
        if self.config.start == "server":
            self._background(self.supervisor.start(self.options))
        elif self.config.reuse_agent:
            self.supervisor.attach()  # an agent already running for this user is used at once

    async def load(self, options: dict[str, Any]) -> None:
        self.options = dict(options)
        client = self.supervisor.client
        if not (self.supervisor.running and client is not None):
            return self._spawn()
        try:
            health = await client.load(
                options["model"] or self._current().model,
                dtype=options.get("dtype"),
                device=options.get("device"),
                quantize=options.get("quantize"),
            )
        except AgentUnavailable as err:
            raise self.unreachable(err) from err
        self._on_agent_change(health)
        self.supervisor.poke()
        return None

    async def unload(self) -> None:
        """Stop our agent; ask a reused agent to unload (it serves others too)."""
        if self.supervisor.owned or not self.supervisor.running:
            await self.supervisor.stop()
        elif (client := self.supervisor.client) is not None:
            try:
                self._on_agent_change(await client.unload())
            except AgentUnavailable as err:
                raise self.unreachable(err) from err

    async def prepare(self) -> None:
        state, running = self._current().state, self.supervisor.running
        if state == "stopped" or (state == "failed" and not running):
            if self.config.start == "manual" and not running:
                raise ModelUnavailable(NO_MODEL)
            if not running:
                self._spawn()
            elif self.supervisor.client is not None and state == "stopped":
                await self.load(self.options)

    def client(self) -> tuple[AsyncCompletionsClient, str | None]:
        if self.supervisor.client is None:
            raise ModelUnavailable("the GALACTICA agent is not running")
        return self.supervisor.client, self._agent_model

    def url(self) -> str | None:
        return self.supervisor.info.url if self.supervisor.info else None

    async def shutdown(self) -> None:
        await self.supervisor.stop()  # ours only: a reused agent is left running
