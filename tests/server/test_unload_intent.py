"""An explicit unload is respected: nothing loads a model again until the user asks for one.

With ``start = "first-use"`` a task starts the agent and loads the configured model; after the
user unloads it (``DELETE /galactica/model``), a task is refused with a sentence that says how
to load one, and no agent is started, until ``POST /galactica/model`` loads a model again.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_helpers import events

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
def jp_server_config(runtime: Path, tiny_checkpoint: Path) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"galactica_ext": True}},
        "Galactica": {
            "model": str(tiny_checkpoint),
            "reuse_agent": False,
            "start": "first-use",
            "device": "cpu",
            "dtype": "float32",
        },
    }


@pytest.mark.timeout(300)
async def test_after_an_unload_nothing_loads_until_the_user_says_so(
    jp_serverapp: Any,
    jp_fetch: Any,
    jp_base_url: str,
    jp_http_port: int,
    runtime: Path,
    tiny_checkpoint: Path,
) -> None:
    base = f"http://localhost:{jp_http_port}{jp_base_url}galactica/"
    headers = {"Authorization": f"token {jp_serverapp.identity_provider.token}"}
    async with httpx.AsyncClient(timeout=90, headers=headers) as client:

        async def task() -> list[tuple[str, Any]]:
            body = {"text": "The", "max_tokens": 4}
            return events((await client.post(base + "tasks/complete", json=body)).text)

        # first use starts the agent and loads the configured model
        assert (await task())[-1][0] == "result"
        assert runtime.exists()

        response = await client.delete(base + "model")
        status = response.json()
        assert status["state"] == "stopped" and status["unloaded"] is True
        deadline = time.monotonic() + 60
        while runtime.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not runtime.exists(), "the agent is still running after the unload"

        # a task now says how to load, and starts nothing
        refused = await task()
        assert refused[-1][0] == "error"
        assert "unloaded" in refused[-1][1]["message"] and "load" in refused[-1][1]["message"]
        await asyncio.sleep(0.5)
        assert not runtime.exists(), "a task started the agent after an explicit unload"
        assert (await client.get(base + "status")).json()["state"] == "stopped"

        # the user loads a model: tasks work again
        response = await client.post(base + "model", json={"model": str(tiny_checkpoint)})
        assert response.status_code == 202 and response.json()["unloaded"] is False
        assert (await task())[-1][0] == "result"
