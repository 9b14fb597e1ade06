"""Supervision of the local agent process, from inside the Jupyter server (no torch).

The agent runs as a child process (its output goes to Jupyter's log), or is an agent that
was already running for this user (found through its runtime file) and is reused. A child
that crashes is restarted with exponential backoff; a child is stopped when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from typing import Any

from ..agent.launcher import agent_command, die_with_parent_hook
from ..agent.runtime import AgentInfo, read_runtime, read_runtime_file, runtime_file
from ..client import AsyncCompletionsClient, ClientError

#: how often /health is polled while the model loads, and otherwise (seconds)
FAST_POLL = 0.5
SLOW_POLL = 5.0
#: an agent that stayed up this long has its restart budget renewed (seconds)
STABLE_AFTER = 60.0


class AgentSupervisor:
    """Starts, watches, restarts and stops one local agent.

    ``on_change`` is called with the agent's health whenever it is read, and with a
    synthetic health (``status``: ``starting``/``failed``/``stopped``) while there is none.
    """

    def __init__(
        self,
        *,
        log: Any,
        on_change: Callable[[dict[str, Any]], None],
        command: list[str] | None = None,
        reuse: bool = True,
        max_restarts: int = 5,
        backoff: float = 1.0,
        startup_timeout: float = 120.0,
    ) -> None:
        self.log = log
        self.on_change = on_change
        self.command = command or []
        self.reuse = reuse
        self.max_restarts = max_restarts
        self.backoff = backoff
        self.startup_timeout = startup_timeout
        self.info: AgentInfo | None = None
        #: the client of the attached agent (None while none is attached)
        self.client: AsyncCompletionsClient | None = None
        self.owned = False
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._options: dict[str, Any] = {}
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watch: asyncio.Task[Any] | None = None
        self._started_at = 0.0
        self._wake = asyncio.Event()

    # life cycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether an agent is attached (ours and alive, or a reused one)."""
        if self.client is None:
            return False
        return self._proc is None or self._proc.returncode is None

    async def start(self, options: dict[str, Any]) -> None:
        """Attach to a running agent or start one with ``options`` (model, dtype, ...)."""
        self._options = dict(options)
        self._stopping = False
        if self.running:
            return
        if self.reuse and self.attach():
            return
        await self._spawn()

    def attach(self) -> bool:
        """Attach to an agent already running for this user, if there is one."""
        info = read_runtime()
        if info is None:
            return False
        self.log.info("galactica_ext: reusing the agent at %s (pid %s)", info.url, info.pid)
        self.info, self.owned, self._proc = info, False, None
        self._use_client(AsyncCompletionsClient(info.url, info.token))
        self._start_watch()
        return True

    def _command(self) -> list[str]:
        o = self._options
        if self.command:
            cmd = list(self.command)
            for flag in ("model", "dtype", "device", "quantize"):
                if o.get(flag):
                    cmd += [f"--{flag}", str(o[flag])]
            return cmd
        return agent_command(
            o.get("model") or None,
            dtype=o.get("dtype") or None,
            device=o.get("device") or None,
            quantize=o.get("quantize") or None,
        )

    async def _spawn(self) -> None:
        cmd = self._command()
        self.on_change(
            {
                "status": "starting",
                "model": self._options.get("model"),
                "progress": {"phase": "start agent", "fraction": 0.0},
            }
        )
        self.log.info("galactica_ext: starting the agent: %s", " ".join(cmd))
        path = runtime_file()
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent_hook(),
        )
        self._proc, self.owned, self._started_at = proc, True, time.monotonic()
        self._spawn_task(self._pump_output(proc))
        deadline = time.monotonic() + self.startup_timeout
        while True:
            info = read_runtime_file(path)
            if info is not None and info.pid == proc.pid:
                break
            if proc.returncode is not None:
                await self._on_exit(proc)
                return
            if time.monotonic() > deadline:
                self.log.error(
                    "galactica_ext: the agent did not listen within %.0f s", self.startup_timeout
                )
                self._terminate(proc)
                return
            await asyncio.sleep(0.1)
        self.info = info
        self._use_client(AsyncCompletionsClient(info.url, info.token))
        self.log.info("galactica_ext: the agent listens on %s (pid %s)", info.url, info.pid)
        self._start_watch()
        self._spawn_task(self._wait_exit(proc))

    async def stop(self) -> None:
        """Stop our agent (a reused one is left running); no restart follows."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        proc, self._proc = self._proc, None
        client, self.client, self.info = self.client, None, None
        if client is not None:
            await client.aclose()
        if proc is not None and proc.returncode is None:
            self._terminate(proc)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        self.on_change({"status": "stopped"})

    def _terminate(self, proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)

    # watching ---------------------------------------------------------------------------

    def _use_client(self, client: AsyncCompletionsClient | None) -> None:
        """Talk to the agent through ``client`` from now on; the previous client is closed."""
        old, self.client = self.client, client
        if old is not None and old is not client:
            self._spawn_task(old.aclose())

    def _spawn_task(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start_watch(self) -> None:
        if self._watch is None or self._watch.done():
            self._watch = asyncio.ensure_future(self._watch_health())

    def poke(self) -> None:
        """Poll /health now (after a load request)."""
        self._wake.set()

    async def _watch_health(self) -> None:
        failures = 0
        while self.client is not None:
            client = self.client
            try:
                health = await client.health()
                failures = 0
            except ClientError as err:
                failures += 1
                if self._proc is None and failures >= 3:  # a reused agent went away
                    self.log.warning("galactica_ext: the reused agent stopped answering: %s", err)
                    self._use_client(None)
                    self.info = None
                    self.on_change({"status": "stopped", "error": str(err)})
                    return
                health = None
            if health is not None:
                self.on_change(health)
                if (
                    health.get("status") == "ready"
                    and time.monotonic() - self._started_at > STABLE_AFTER
                ):
                    self.restarts = 0
            busy = health is None or health.get("status") == "loading"
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FAST_POLL if busy else SLOW_POLL)

    async def _pump_output(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            line = await proc.stdout.readline()
            if not line:
                return
            self.log.info(
                "[galactica agent %s] %s", proc.pid, line.decode(errors="replace").rstrip()
            )

    async def _wait_exit(self, proc: asyncio.subprocess.Process) -> None:
        await proc.wait()
        if proc is self._proc:
            await self._on_exit(proc)

    async def _on_exit(self, proc: asyncio.subprocess.Process) -> None:
        if self._stopping or proc is not self._proc:
            return
        code = proc.returncode
        self._use_client(None)
        self.info = None
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self.restarts >= self.max_restarts:
            message = (
                f"the GALACTICA agent exited with code {code} and was restarted "
                f"{self.restarts} times; giving up (see the Jupyter log)"
            )
            self.log.error("galactica_ext: %s", message)
            self._proc = None
            self.on_change(
                {"status": "failed", "error": message, "model": self._options.get("model")}
            )
            return
        delay = self.backoff * (2**self.restarts)
        self.restarts += 1
        message = (
            f"the GALACTICA agent exited with code {code}; restarting in {delay:.0f} s "
            f"(attempt {self.restarts} of {self.max_restarts})"
        )
        self.log.warning("galactica_ext: %s", message)
        self.on_change(
            {
                "status": "starting",
                "error": message,
                "model": self._options.get("model"),
                "progress": {"phase": "restart agent", "fraction": 0.0},
            }
        )
        await asyncio.sleep(delay)
        if not self._stopping and self._proc is proc:
            self._proc = None
            await self._spawn()
