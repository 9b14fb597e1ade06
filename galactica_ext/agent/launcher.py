"""Start an agent as a child process and wait until it listens (no torch imported here)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .runtime import AgentInfo, read_runtime_file, runtime_file


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the kernel sends SIGTERM to the agent if its parent dies without cleaning up
    (killed with SIGKILL, say), so that no orphan agent holds the model's memory."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` tying the child's life to this process (Linux only, else None)."""
    return _die_with_parent if sys.platform.startswith("linux") else None


class AgentStartError(RuntimeError):
    """The agent process exited or did not come up in time."""


def agent_command(
    model: str | None = None,
    *,
    dtype: str | None = None,
    device: str | None = None,
    quantize: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    runtime: Path | None = None,
    lazy: bool = False,
) -> list[str]:
    """The command line of an agent with these options."""
    cmd = [sys.executable, "-m", "galactica_ext.agent", "--host", host, "--port", str(port)]
    for flag, value in (
        ("--model", model),
        ("--dtype", dtype),
        ("--device", device),
        ("--quantize", quantize),
    ):
        if value:
            cmd += [flag, value]
    if runtime is not None:
        cmd += ["--runtime-file", str(runtime)]
    if lazy:
        cmd.append("--no-load")
    return cmd


def start_agent(
    model: str | None = None,
    *,
    runtime: Path | None = None,
    timeout: float = 60.0,
    stdout: IO[bytes] | int | None = None,
    stderr: IO[bytes] | int | None = None,
    die_with_parent: bool = False,
    **options,
) -> tuple[subprocess.Popen, AgentInfo]:
    """Start ``galactica-ext agent`` and return once it listens (the model may still load:
    watch ``/health``). With ``die_with_parent`` it stops when this process dies."""
    runtime = runtime or runtime_file()
    proc = subprocess.Popen(
        agent_command(model, runtime=runtime, **options),
        stdout=stdout,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent_hook() if die_with_parent else None,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = read_runtime_file(runtime)
        if info is not None and info.pid == proc.pid:
            return proc, info
        if proc.poll() is not None:
            raise AgentStartError(
                f"the GALACTICA agent exited with code {proc.returncode} before listening"
            )
        time.sleep(0.05)
    proc.kill()
    raise AgentStartError(f"the GALACTICA agent did not listen within {timeout:.0f} s")
