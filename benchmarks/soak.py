"""Soak and fault test (not CI): many clients against one agent, then ``kill -9`` under Jupyter.

A ``jupyter lab`` with the server extension supervises an agent on a random-weight checkpoint
(``--shape``, default tiny). ``--clients`` async clients send, for ``--duration`` seconds, a mix
of streams, whole completions, beam searches, cancels (the stream closed after its first chunk)
and bad requests; a probe times ``/health`` meanwhile. Then the agent is killed with SIGKILL and
the time until ``/galactica/status`` is ready again on a new agent is measured.

Prints requests sent, answered, rejected as expected (bad requests: 4xx), explicit 503s,
errors, lost (must be 0), 5xx (must be 0), the slowest ``/health``, the agent's RSS before and
after, and the time to healthy after the kill. ``--no-lab`` runs the agent alone (no kill).

    .venv/bin/python benchmarks/soak.py --duration 120 --clients 50
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from galactica_ext.agent.runtime import AgentInfo, read_runtime_file

BAD = [  # each must be a 4xx naming what was wrong
    {"prompt": "x", "temperature": 3e-39},
    {"prompt": "x", "seed": 2**64},
    {"prompt": "x", "logit_bias": {"50000": 1}},
    {"prompt": "x", "max_tokens": 0},
    {"prompt": "\ud800"},
    {"prompt": "x", "n": 99},
    {"prompt": "x", "model": "m" * 300},
    "[" * 100_000 + "]" * 100_000,
    "{not json",
]
PROMPTS = ["The Transformer architecture", "Photosynthesis converts", "Attention [START_REF]"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Tally:
    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.kinds: collections.Counter[str] = collections.Counter()
        self.examples: dict[str, str] = {}
        self.health_max = 0.0

    def add(self, outcome: str, detail: str = "") -> None:
        self.counts[outcome] += 1
        if detail and outcome not in self.examples:
            self.examples[outcome] = detail[:300]


async def one_request(http: httpx.AsyncClient, kind: str, tally: Tally) -> None:
    prompt = random.choice(PROMPTS)
    body: Any = {"prompt": prompt, "max_tokens": random.randint(8, 48), "temperature": 0.7}
    if kind == "beam":
        body.update(n=4, use_beam_search=True, max_tokens=16, temperature=0)
    if kind in ("stream", "cancel"):
        body["stream"] = True
    if kind == "bad":
        body = random.choice(BAD)
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    tally.add("sent")
    try:
        async with http.stream("POST", "/v1/completions", content=content) as reply:
            if reply.status_code >= 500 and reply.status_code != 503:
                return tally.add("5xx", (await reply.aread()).decode(errors="replace"))
            if reply.status_code == 503:
                await reply.aread()
                return tally.add("explicit_503")
            if kind == "bad":
                data = json.loads(await reply.aread())
                ok = 400 <= reply.status_code < 500 and data["error"]["message"]
                return tally.add("rejected_as_expected" if ok else "errors", str(data))
            if reply.status_code != 200:
                return tally.add("errors", (await reply.aread()).decode(errors="replace"))
            if kind == "cancel":
                async for line in reply.aiter_lines():
                    if line.startswith("data: "):
                        return tally.add("answered")  # closing the stream cancels it
                return tally.add("lost", "a stream with no event")
            if kind in ("stream",):
                last, failed = "", False
                async for line in reply.aiter_lines():
                    if line.startswith("data: "):
                        last = line
                        failed = failed or '"error"' in line[:20]
                if failed:
                    return tally.add("errors", "an error event")
                return tally.add("answered" if last == "data: [DONE]" else "lost", last)
            data = json.loads(await reply.aread())
            tally.add("answered" if data.get("choices") else "lost", str(data))
    except (httpx.TransportError, ValueError) as err:
        tally.add("lost", f"{type(err).__name__}: {err}")


async def client(http: httpx.AsyncClient, deadline: float, tally: Tally) -> None:
    kinds = ["stream"] * 35 + ["whole"] * 15 + ["beam"] * 10 + ["cancel"] * 20 + ["bad"] * 20
    while time.monotonic() < deadline:
        kind = random.choice(kinds)
        tally.kinds[kind] += 1
        await one_request(http, kind, tally)


async def probe(http: httpx.AsyncClient, deadline: float, tally: Tally) -> None:
    while time.monotonic() < deadline:
        started = time.perf_counter()
        await http.get("/health")
        tally.health_max = max(tally.health_max, time.perf_counter() - started)
        await asyncio.sleep(0.5)


async def soak(info: AgentInfo, clients: int, duration: float) -> Tally:
    tally = Tally()
    limits = httpx.Limits(max_connections=clients + 2)
    timeout = httpx.Timeout(300, connect=30)
    async with httpx.AsyncClient(
        base_url=info.url, headers=info.headers, limits=limits, timeout=timeout
    ) as http:
        deadline = time.monotonic() + duration
        await asyncio.gather(
            probe(http, deadline, tally), *(client(http, deadline, tally) for _ in range(clients))
        )
        for _ in range(600):  # every cancelled request has left the engine
            if (await http.get("/health")).json()["queue"] == {"running": 0, "waiting": 0}:
                break
            await asyncio.sleep(0.1)
    return tally


def start_lab(tmp: Path, checkpoint: Path) -> tuple[subprocess.Popen, str, str]:
    port, token = free_port(), secrets.token_hex(16)
    config = tmp / "config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(
        json.dumps(
            {
                "ServerApp": {"jpserver_extensions": {"galactica_ext": True}},
                "Galactica": {
                    "model": str(checkpoint),
                    "device": "cpu",
                    "dtype": "float32",
                    "start": "server",
                    "reuse_agent": False,
                    "restart_backoff": 0.2,
                },
            }
        )
    )
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_CONFIG_PATH": str(config),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "GALACTICA_RUNTIME_FILE": str(tmp / "agent.json"),
        "HF_HUB_OFFLINE": "1",
    }
    argv = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp}"]  # fmt: skip
    if os.geteuid() == 0:  # containers
        argv.append("--allow-root")
    log = open(tmp / "lab.log", "wb")  # noqa: SIM115 (lives as long as the lab)
    proc = subprocess.Popen(
        argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    return proc, f"http://127.0.0.1:{port}", token


async def lab_status(url: str, token: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.get(
            f"{url}/galactica/status", headers={"Authorization": f"token {token}"}
        )
        return reply.json()


async def until_ready(
    lab: subprocess.Popen, url: str, token: str, runtime: Path, not_pid: int, timeout: float
) -> float:
    """Seconds until the lab says ready on an agent whose pid is not ``not_pid``."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if lab.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with code {lab.returncode}")
        with contextlib.suppress(httpx.TransportError, ValueError):
            status = await lab_status(url, token)
            info = read_runtime_file(runtime)
            if status.get("state") == "ready" and info is not None and info.pid != not_pid:
                return time.perf_counter() - started
        await asyncio.sleep(0.1)
    raise TimeoutError(f"not ready within {timeout:.0f} s")


async def main_async(args: argparse.Namespace) -> int:
    from galactica_ext.agent.launcher import start_agent
    from galactica_ext.checkpoints import build_random_checkpoint

    tmp = Path(tempfile.mkdtemp(prefix="galactica-soak-"))
    checkpoint = build_random_checkpoint(tmp / "checkpoint", args.shape)
    runtime = tmp / "agent.json"
    lab = None
    try:
        if args.no_lab:
            agent, info = start_agent(
                str(checkpoint), runtime=runtime, dtype="float32", device="cpu",
                die_with_parent=True, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        else:
            lab, lab_url, lab_token = start_lab(tmp, checkpoint)
            seconds = await until_ready(lab, lab_url, lab_token, runtime, -1, 300)
            print(f"jupyter lab and its agent ready in {seconds:.1f} s")
        info = read_runtime_file(runtime)
        assert info is not None
        async with httpx.AsyncClient(base_url=info.url, headers=info.headers, timeout=60) as h:
            for _ in range(1200):
                if (await h.get("/health")).json()["status"] == "ready":
                    break
                await asyncio.sleep(0.1)
        rss_before = rss_mb(info.pid)
        tally = await soak(info, args.clients, args.duration)
        rss_after = rss_mb(info.pid)
        counts = tally.counts
        print(f"clients {args.clients}, duration {args.duration:.0f} s, shape {args.shape}")
        print("kinds:", dict(tally.kinds))
        for name in ("sent", "answered", "rejected_as_expected", "explicit_503", "errors",
                     "lost", "5xx"):  # fmt: skip
            print(f"{name:>22}: {counts[name]}")
        print(f"{'slowest /health':>22}: {tally.health_max * 1000:.0f} ms")
        print(f"{'agent RSS':>22}: {rss_before:.0f} MB before, {rss_after:.0f} MB after")
        for outcome, example in tally.examples.items():
            print(f"  e.g. {outcome}: {example}")
        if lab is not None:
            os.kill(info.pid, signal.SIGKILL)
            seconds = await until_ready(lab, lab_url, lab_token, runtime, info.pid, 300)
            print(f"{'healthy after kill -9':>22}: {seconds:.1f} s")
        return 0 if counts["lost"] == 0 and counts["5xx"] == 0 else 1
    finally:
        if lab is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(lab.pid, signal.SIGTERM)
            lab.wait(timeout=60)
        elif args.no_lab:
            agent.terminate()
            agent.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--shape", default="tiny", help="random checkpoint shape (checkpoints.py)")
    parser.add_argument("--no-lab", action="store_true", help="the agent alone, no kill -9")
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
