"""Helpers of the server extension's tests: server-sent events, waiting for a state, the
agent's own view (``/health``) through the shared client."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from galactica_ext.client import AsyncCompletionsClient


def events(body: bytes | str) -> list[tuple[str, Any]]:
    """The server-sent events of a response body, data decoded."""
    text = body.decode() if isinstance(body, bytes) else body
    out = []
    for block in text.split("\n\n"):
        name, data = "message", []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            out.append((name, json.loads("\n".join(data))))
    return out


def streamed(got: list[tuple[str, Any]]) -> dict[int, str]:
    """The text of each choice, put together from the ``token`` events."""
    texts: dict[int, str] = {}
    for name, data in got:
        if name == "token":
            texts[data["index"]] = texts.get(data["index"], "") + data["text"]
    return texts


async def wait_state(jp_fetch: Any, state: str, timeout: float = 120.0) -> dict[str, Any]:
    """Poll ``GET /galactica/status`` until its state is ``state``."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await jp_fetch("galactica", "status")
        status = json.loads(response.body)
        if status["state"] == state:
            return status
        await asyncio.sleep(0.2)
    raise AssertionError(f"state never became {state!r}: {status}")


async def post(jp_fetch: Any, *path: str, body: Any, **kwargs: Any) -> Any:
    return await jp_fetch("galactica", *path, method="POST", body=json.dumps(body), **kwargs)


async def agent_health(url: str, token: str | None) -> dict[str, Any]:
    """The agent's ``/health``: its queue (``running``, ``waiting``) and prefix cache."""
    async with AsyncCompletionsClient(url, token) as client:
        return await client.health()


async def wait_idle(url: str, token: str | None, timeout: float = 30.0) -> float:
    """Wait until the agent runs no request; return how long that took (seconds)."""
    started = time.monotonic()
    async with AsyncCompletionsClient(url, token) as client:
        while True:
            queue = (await client.health())["queue"]
            if queue == {"running": 0, "waiting": 0}:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AssertionError(f"the agent is still busy after {timeout:.0f} s: {queue}")
            await asyncio.sleep(0.02)
