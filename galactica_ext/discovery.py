"""Finding the completions server a kernel should talk to, or starting one.

In order: an explicit URL, ``$GALACTICA_URL`` (with ``$GALACTICA_API_KEY``), the server
extension's ``c.Galactica.remote_url`` (read from Jupyter's config files), the runtime file of
a running agent; else, with ``start``, a new agent (one for every kernel: a lock beside the
runtime file keeps two kernels from starting two). No torch is imported here.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .client.core import normalise_url
from .client.errors import API_KEY_ENV, HOW_TO_START, URL_ENV, AgentUnavailable
from .client.sync import CompletionsClient

__all__ = ["AgentClient", "configured_remote", "connect", "locate", "started_agents"]

#: agents this process started (so that tests and atexit code can stop them)
started_agents: list[Any] = []


def configured_remote() -> tuple[str, str] | None:
    """``c.Galactica.remote_url`` / ``remote_api_key`` from Jupyter's server config files."""
    try:
        from jupyter_core.paths import jupyter_config_path
        from traitlets.config.loader import (
            Config,
            JSONFileConfigLoader,
            PyFileConfigLoader,
        )
    except ImportError:  # pragma: no cover - jupyter is a dependency
        return None
    merged = Config()
    for directory in map(Path, reversed(jupyter_config_path())):
        # as Jupyter reads them: the .d directory's JSON files, then the .json, then the .py
        files = sorted((directory / "jupyter_server_config.d").glob("*.json"))
        files += [directory / "jupyter_server_config.json", directory / "jupyter_server_config.py"]
        for file in files:
            if not file.is_file():
                continue
            loader = PyFileConfigLoader if file.suffix == ".py" else JSONFileConfigLoader
            try:
                merged.merge(loader(file.name, path=str(file.parent)).load_config())
            except Exception:  # a broken config file is the server's problem, not ours
                continue
    section = merged.get("Galactica", {})
    url = section.get("remote_url") if hasattr(section, "get") else None
    if not url:
        return None
    return str(url), str(section.get("remote_api_key") or "")


@contextlib.contextmanager
def _start_lock(path: Path) -> Iterator[None]:
    """An exclusive lock beside the runtime file, so two kernels don't start two agents."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows: no lock, a rare double start
            pass
        yield
    finally:
        os.close(fd)


def locate(url: str | None = None, token: str | None = None) -> tuple[str, str | None] | None:
    """Where the completions server is, without starting one: ``(url, token)`` or None.

    In order: ``url`` (with ``token``), ``$GALACTICA_URL`` (with ``$GALACTICA_API_KEY``), the
    server extension's ``c.Galactica.remote_url``, the runtime file of a running agent.
    """
    url = url or os.environ.get(URL_ENV)
    if url:
        return url, token or os.environ.get(API_KEY_ENV) or None
    remote = configured_remote()
    if remote is not None:
        return remote[0], token or remote[1] or None
    from .agent.runtime import read_runtime

    info = read_runtime()
    return (info.url, info.token) if info is not None else None


def connect(
    url: str | None = None,
    token: str | None = None,
    start: bool = True,
    model: str | None = None,
    *,
    timeout: float = 600.0,
    start_timeout: float = 120.0,
    **agent_options: Any,
) -> CompletionsClient:
    """A client for the completions server this user should talk to.

    The server found by :func:`locate` (an explicit URL, ``$GALACTICA_URL``, the server
    extension's ``remote_url``, or a running agent's runtime file: the one the server extension
    or another kernel started), else, with ``start``, a new agent serving ``model``
    (``agent_options``: ``dtype``, ``device``, ``quantize``), which then serves every other
    kernel too, so the weights load once. The model may still be loading when this returns:
    see :meth:`CompletionsClient.wait_ready`. Raises :class:`AgentUnavailable` when there is
    none and ``start`` is false, or when the agent cannot start.
    """
    found = locate(url, token)
    if found is not None:
        return CompletionsClient(found[0], found[1], timeout=timeout)
    if not start:
        raise AgentUnavailable(f"No GALACTICA agent is running: {HOW_TO_START}.")
    from .agent.runtime import read_runtime, runtime_file

    path = runtime_file()
    with _start_lock(path):
        info = read_runtime()  # another kernel may have started one meanwhile
        if info is None:
            info = _start(model, path, start_timeout, agent_options)
    return CompletionsClient(info.url, info.token, timeout=timeout)


class AgentClient:
    """The client of whichever agent runs now, for long-lived front ends (magics, widget).

    Every :meth:`get` locates the agent again (it may have restarted on another port, or
    ``$GALACTICA_URL`` changed) and reuses the client while the address stays the same.
    A ``client`` given here is used as is, always.
    """

    def __init__(self, client: CompletionsClient | None = None) -> None:
        self.fixed = client is not None
        self._client = client
        self._lock = threading.Lock()  # the widget's worker thread and the kernel's

    def get(
        self, start: bool = True, model: str | None = None, **agent_options: Any
    ) -> CompletionsClient:
        """The current agent's client; with ``start``, an agent is started when none runs
        (serving ``model``); otherwise :class:`AgentUnavailable` says how to get one."""
        if self.fixed:
            return self._client  # type: ignore[return-value]
        with self._lock:
            found = locate()
            if found is None:
                self._use(connect(start=start, model=model, **agent_options))
            elif self._client is None or (self._client.url, self._client.token) != (
                normalise_url(found[0]),
                found[1],
            ):
                self._use(CompletionsClient(found[0], found[1]))
            return self._client  # type: ignore[return-value]

    def _use(self, client: CompletionsClient) -> None:
        old, self._client = self._client, client
        if old is not None and old is not client:
            old.close()

    def close(self) -> None:
        if self._client is not None and not self.fixed:
            self._client.close()
            self._client = None


def _start(model: str | None, path: Path, timeout: float, options: dict[str, Any]) -> Any:
    from .agent.launcher import AgentStartError, start_agent
    from .specs import resolve_model_spec

    spec = resolve_model_spec(model)  # raises on a bad spec before anything starts
    log_path = path.with_name("galactica-agent.log")
    with open(log_path, "ab") as log:
        try:
            proc, info = start_agent(
                spec, runtime=path, timeout=timeout, stdout=log, stderr=log, **options
            )
        except (AgentStartError, OSError) as err:
            raise AgentUnavailable(
                f"Could not start a GALACTICA agent ({err}; its log is {log_path}): {HOW_TO_START}."
            ) from err
    started_agents.append(proc)
    return info
