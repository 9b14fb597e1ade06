"""The server extension supervising the real local agent (pytest-jupyter).

The agent runs on the random-weight ``tiny`` GALACTICA checkpoint built with the real
tokenizer (``tiny_checkpoint``, tests/conftest.py): the extension starts it on the first
load, streams a task through it, restarts it after a crash (the browser sees the restart in
the status) and stops it on unload.

Run: ``pytest tests/server``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_helpers import events, streamed

pytest_plugins = ("pytest_jupyter.jupyter_server",)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The agent's runtime file in a private place; the package importable by the child."""
    runtime = tmp_path / "agent.json"
    monkeypatch.setenv("GALACTICA_RUNTIME_FILE", str(runtime))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return runtime


@pytest.fixture
def jp_server_config(runtime: Path) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"galactica_ext": True}},
        "Galactica": {
            "reuse_agent": False,
            "start": "manual",
            "device": "cpu",
            "dtype": "float32",
            "restart_backoff": 0.2,
        },
    }


@pytest.mark.timeout(300)
async def test_local_agent_loads_runs_restarts_and_stops(
    jp_serverapp: Any,
    jp_fetch: Any,
    tiny_checkpoint: Path,
    runtime: Path,
    jp_base_url: str,
    jp_http_port: int,
) -> None:
    app = jp_serverapp
    base = f"http://localhost:{jp_http_port}{jp_base_url}galactica/"
    headers = {"Authorization": f"token {app.identity_provider.token}"}
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:

        async def status() -> dict[str, Any]:
            return (await client.get(base + "status")).json()

        async def until(state: str, timeout: float = 180) -> dict[str, Any]:
            deadline, last = time.monotonic() + timeout, {}
            while time.monotonic() < deadline:
                last = await status()
                if last["state"] == state:
                    return last
                await asyncio.sleep(0.25)
            raise AssertionError(f"never {state}: {last}")

        assert (await status())["state"] == "stopped"
        # with start=manual, a task before any load says how to load
        events_ = events((await client.post(base + "tasks/summarise", json={"text": "A."})).text)
        assert events_[-1][0] == "error" and "sidebar" in events_[-1][1]["message"]

        response = await client.post(base + "model", json={"model": str(tiny_checkpoint)})
        assert response.status_code == 202
        ready = await until("ready")
        assert ready["model"] == str(tiny_checkpoint)
        assert ready["backend"] == "local"
        assert ready["device"] == "cpu" and ready["dtype"] == "float32"
        assert ready["memory_bytes"] > 0
        agent = json.loads(runtime.read_text())

        response = await client.post(base + "tasks/complete", json={"text": "The", "max_tokens": 8})
        got = events(response.text)
        assert got[-1][0] == "result", got
        assert got[-1][1]["text"] == streamed(got)[0][: len(got[-1][1]["text"])]

        # a crashed agent is restarted, and the browser sees it
        os.kill(agent["pid"], signal.SIGKILL)
        seen = set()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            current = await status()
            seen.add(current["state"])
            if (
                current["state"] == "ready"
                and json.loads(runtime.read_text())["pid"] != agent["pid"]
            ):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the agent was not restarted: {current}")
        assert seen & {"starting", "loading"}
        new_pid = json.loads(runtime.read_text())["pid"]

        response = await client.delete(base + "model")
        assert response.json()["state"] == "stopped"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(new_pid, 0)
            except ProcessLookupError:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the agent is still running after unload")


@pytest.mark.timeout(300)
async def test_a_model_that_cannot_load_shows_the_agents_sentence(
    jp_serverapp: Any,
    jp_fetch: Any,
    runtime: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hub is unreachable (offline): the sidebar shows the agent's own one-sentence
    error, as the agent's /health says it, with no traceback."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    response = await jp_fetch(
        "galactica", "model", method="POST", body=json.dumps({"model": "facebook/galactica-1.3b"})
    )
    assert response.code == 202
    deadline, status = time.monotonic() + 180, {}
    while time.monotonic() < deadline:
        status = json.loads((await jp_fetch("galactica", "status")).body)
        if status["state"] == "failed":
            break
        await asyncio.sleep(0.25)
    else:
        raise AssertionError(f"the load never failed: {status}")
    agent = json.loads(runtime.read_text())
    async with httpx.AsyncClient(timeout=10) as client:
        health = (
            await client.get(
                agent["url"] + "/health", headers={"Authorization": f"Bearer {agent['token']}"}
            )
        ).json()
    assert status["error"] == health["error"]  # passed on unmangled
    assert "Traceback" not in status["error"] and "\n" not in status["error"].strip()
    assert status["model"] == "facebook/galactica-1.3b"
    await jp_fetch("galactica", "model", method="DELETE")


@pytest.mark.timeout(300)
async def test_the_agent_stops_with_the_server(
    jp_serverapp: Any, jp_fetch: Any, tiny_checkpoint: Path, runtime: Path
) -> None:
    """The extension app's stop_extension (what the server runs as it shuts down) stops our
    agent: no atexit hook, no wrapped cleanup."""
    body = json.dumps({"model": str(tiny_checkpoint)})
    assert (await jp_fetch("galactica", "model", method="POST", body=body)).code == 202
    deadline = time.monotonic() + 180
    while json.loads((await jp_fetch("galactica", "status")).body)["state"] != "ready":
        assert time.monotonic() < deadline, "the model never became ready"
        await asyncio.sleep(0.25)
    pid = json.loads(runtime.read_text())["pid"]
    await jp_serverapp.cleanup_extensions()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the agent is still running after the server stopped")
