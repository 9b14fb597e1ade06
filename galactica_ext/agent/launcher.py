"""Start an agent as a child process and wait until it listens (no torch imported here)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from .runtime import AgentInfo, read_runtime_file, runtime_file


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
    **options,
) -> tuple[subprocess.Popen, AgentInfo]:
    """Start ``galactica-ext agent`` and return once it listens (the model may still load:
    watch ``/health``)."""
    runtime = runtime or runtime_file()
    proc = subprocess.Popen(
        agent_command(model, runtime=runtime, **options),
        stdout=stdout,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
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
