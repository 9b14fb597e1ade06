"""The server extension's routes, through a real Jupyter server (pytest-jupyter).

The model is our real agent (``agent_server``: a subprocess serving the random-weight
``tiny`` GALACTICA checkpoint with the real tokenizer), used here as the extension's remote
OpenAI-compatible backend; ``test_local_agent.py`` has the extension start and supervise its
own agent. Random weights write meaningless text, so the tests check structure and
behaviour: what streamed is what was parsed, an abort stops the generation in the agent
(its ``/health`` queue), growing text reuses the agent's prefix cache.

Run: ``pytest tests/server``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from agent_fixtures import Server
from server_helpers import agent_health, events, post, streamed, wait_idle, wait_state
from tornado.httpclient import HTTPClientError

from galactica_ext import tasks

pytest_plugins = ("pytest_jupyter.jupyter_server",)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def jp_server_config(
    agent_server: Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    # a private runtime file: a developer's own agent is never found or used
    monkeypatch.setenv("GALACTICA_RUNTIME_FILE", str(tmp_path / "agent.json"))
    return {
        "ServerApp": {"jpserver_extensions": {"galactica_ext": True}},
        "Galactica": {
            "remote_url": agent_server.url + "/v1",
            "remote_api_key": agent_server.token,
            "reuse_agent": False,
        },
    }


# --- authentication ------------------------------------------------------------------

ROUTES = [
    ("GET", "status", None),
    ("POST", "model", {"model": "125m"}),
    ("DELETE", "model", None),
    ("POST", "tasks/cite", {"text": "x"}),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_every_route_needs_credentials(
    jp_fetch: Any, jp_base_url: str, jp_http_port: int, method: str, path: str, body: Any
) -> None:
    url = f"http://localhost:{jp_http_port}{jp_base_url}galactica/{path}"
    async with httpx.AsyncClient() as client:
        response = await client.request(
            method, url, content=json.dumps(body) if body is not None else None
        )
    assert response.status_code in (401, 403)


async def test_writes_need_xsrf_with_cookie_auth(
    jp_serverapp: Any, jp_fetch: Any, jp_base_url: str, jp_http_port: int
) -> None:
    # a browser's cookie without the XSRF token must not be able to load a model
    base = f"http://localhost:{jp_http_port}{jp_base_url}"
    token = jp_serverapp.identity_provider.token
    async with httpx.AsyncClient() as client:
        await client.get(f"{base}login")
        xsrf = client.cookies.get("_xsrf")
        login = await client.post(f"{base}login", data={"password": token, "_xsrf": xsrf})
        assert login.status_code in (200, 302)
        # logged in by cookie, but without the XSRF header
        response = await client.post(f"{base}galactica/model", json={"model": "125m"})
        assert response.status_code == 403
        # with it, the request goes through (to input validation)
        response = await client.post(
            f"{base}galactica/model", json={"gpu": 1}, headers={"X-XSRFToken": xsrf}
        )
    assert response.status_code == 400


# --- status and the agent as a remote backend ------------------------------------------


async def test_status_reports_the_remote_model(jp_fetch: Any, agent_server: Server) -> None:
    status = await wait_state(jp_fetch, "ready", timeout=30)
    assert status["model"] == agent_server.model  # the agent's /v1/models id
    assert status["backend"] == "remote"
    assert status["url"] == agent_server.url + "/v1"
    assert set(status) == {
        "state",
        "model",
        "device",
        "dtype",
        "memory_bytes",
        "progress",
        "error",
        "backend",
        "url",
        "remote",
        "remotes",
        "unloaded",
    }
    assert status["remote"] == "default" and status["remotes"] == ["default"]
    assert status["unloaded"] is False


async def test_cite_streams_tokens_then_suggestions(jp_fetch: Any) -> None:
    await wait_state(jp_fetch, "ready", timeout=30)
    text = "Attention models"
    response = await post(jp_fetch, "tasks", "cite", body={"text": text, "n": 3})
    assert response.headers["Content-Type"].startswith("text/event-stream")
    got = events(response.body)
    names = [name for name, _ in got]
    assert names[-1] == "result" and set(names[:-1]) == {"token"}, names
    result = got[-1][1]
    assert result["truncated"] is False
    suggestions = result["suggestions"]
    assert 1 <= len(suggestions) <= 3
    for suggestion in suggestions:
        assert set(suggestion) == {"text", "title", "author"}
        assert suggestion["text"].strip() and "[END_REF]" not in suggestion["text"]
    assert len({s["text"].lower() for s in suggestions}) == len(suggestions)  # distinct
    # the suggestions are the parse of the beams' texts that were streamed, in order
    texts = streamed(got)
    assert set(texts) <= {0, 1, 2}
    outputs = [texts.get(i, "") for i in range(3)]
    assert result == tasks.parse(tasks.cite(text, n=3), outputs)


@pytest.mark.parametrize(
    ("task", "text", "key"),
    [
        ("equation", "the energy of a body at rest", "latex"),
        ("summarise", "A cell about transformers.", "text"),
        ("ask", "What is six times seven?", "text"),
        ("work", "What is six times seven?", "reasoning"),
        ("complete", "The transformer", "text"),
    ],
)
async def test_each_task_streams_and_parses(jp_fetch: Any, task: str, text: str, key: str) -> None:
    await wait_state(jp_fetch, "ready", timeout=30)
    response = await post(jp_fetch, "tasks", task, body={"text": text, "max_tokens": 16})
    got = events(response.body)
    assert [name for name, _ in got[:-1]] == ["token"] * (len(got) - 1)
    assert got[-1][0] == "result", got[-1]
    result = got[-1][1]
    assert key in result and result["truncated"] is False
    # what streamed is what was parsed (the browser shows one, inserts the other)
    texts = streamed(got)
    assert set(texts) == {0} and texts[0]
    assert result == tasks.parse(tasks.build(task, text, max_tokens=16), [texts[0]])


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("tasks/cite", {"text": ""}, "empty"),
        ("tasks/cite", {"text": 3}, "string"),
        ("tasks/nope", {"text": "x"}, "unknown task"),
        ("tasks/complete", {"text": "x", "max_tokens": 100000}, "limit"),
        ("tasks/complete", {"text": "x", "max_tokens": -1}, "max_tokens"),
        ("tasks/complete", {"text": "x", "max_tokens": "9"}, "integer"),
        ("tasks/complete", {"text": "x", "temperature": -1}, "temperature"),
        ("tasks/complete", {"text": "x", "bogus": 1}, "unknown field"),
        ("tasks/complete", ["x"], "JSON object"),
        ("model", {"model": "7b"}, "unknown model"),
        ("model", {"model": "/no/such/dir"}, "/no/such/dir"),
        ("model", {"url": "http://elsewhere:8000/v1"}, "server's configuration"),
        ("model", {"remote": "nope"}, "not configured"),
        ("model", {"model": "125m", "quantize": "3bit"}, "quantize"),
        ("model", {"gpu": True}, "unknown field"),
    ],
)
async def test_bad_input_is_a_400_with_a_json_message(
    jp_fetch: Any, path: str, body: Any, message: str
) -> None:
    with pytest.raises(HTTPClientError) as err:
        await post(jp_fetch, *path.split("/"), body=body)
    assert err.value.code == 400
    assert message in json.loads(err.value.response.body)["message"]


async def test_malformed_json_is_a_400(jp_fetch: Any) -> None:
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("galactica", "tasks", "cite", method="POST", body="{not json")
    assert err.value.code == 400


async def test_jupyter_answers_while_a_large_request_is_built(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1 MB text to summarise is escaped and tokenised off Jupyter's event loop: while its
    request is being built (held there until Jupyter's own /api/status has answered),
    Jupyter serves other requests."""
    await wait_state(jp_fetch, "ready", timeout=30)
    building, release, built = threading.Event(), threading.Event(), threading.Event()
    real_build = tasks.build

    def held_build(*args: Any, **kwargs: Any) -> tasks.GenerationRequest:
        building.set()
        release.wait(60)  # on the event loop, this would stall Jupyter for the whole minute
        try:
            return real_build(*args, **kwargs)
        finally:
            built.set()

    monkeypatch.setattr(tasks, "build", held_build)
    text = "Proteins fold into three-dimensional shapes. " * (1_000_000 // 45)
    job = asyncio.ensure_future(
        post(jp_fetch, "tasks", "summarise", body={"text": text, "max_tokens": 2})
    )
    assert await asyncio.to_thread(building.wait, 60)
    response = await jp_fetch("api", "status")
    answered_while_building = not built.is_set()
    release.set()
    assert response.code == 200 and answered_while_building
    assert events((await job).body)[-1][0] == "result"


# --- cancellation and cache reuse, seen from the agent ----------------------------------


async def test_browser_abort_cancels_the_generation(
    jp_serverapp: Any,
    jp_fetch: Any,
    jp_base_url: str,
    jp_http_port: int,
    agent_server: Server,
) -> None:
    """Closing the browser's stream cancels the generation on the agent.

    Deterministic on a loaded machine: the agent is paused (SIGSTOP) as soon as the first
    token reaches the browser, so it cannot run to ``max_tokens`` before the abort; the agent's
    ``disconnected`` count then says that the request was cut off while it was still running.
    """
    await wait_state(jp_fetch, "ready", timeout=30)
    await wait_idle(agent_server.url, agent_server.token)
    before = (await agent_health(agent_server.url, agent_server.token))["disconnected"]
    # greedy decoding of this prompt by the tiny checkpoint meets no stop: left alone, it
    # runs to max_tokens
    url = f"http://localhost:{jp_http_port}{jp_base_url}galactica/tasks/complete"
    headers = {"Authorization": f"token {jp_serverapp.identity_provider.token}"}
    body = {"text": "The transformer", "max_tokens": 1024}
    pid = agent_server.proc.pid
    try:
        async with (
            httpx.AsyncClient(timeout=60) as client,
            client.stream("POST", url, content=json.dumps(body), headers=headers) as response,
        ):
            assert response.status_code == 200
            async for line in response.aiter_lines():
                assert not line.startswith(("event: result", "event: error")), line
                if line.startswith("event: token"):
                    os.kill(pid, signal.SIGSTOP)
                    break
            # leaving the block closes the connection, as a browser's AbortController does
        await asyncio.sleep(0.5)  # Jupyter closes its request to the paused agent meanwhile
    finally:
        os.kill(pid, signal.SIGCONT)
    await wait_idle(agent_server.url, agent_server.token)
    after = (await agent_health(agent_server.url, agent_server.token))["disconnected"]
    assert after == before + 1
    # and the agent serves the next request
    response = await post(jp_fetch, "tasks", "complete", body={"text": "Next", "max_tokens": 2})
    assert events(response.body)[-1][0] == "result"


async def test_growing_text_reuses_the_agents_prefix_cache(
    jp_fetch: Any,
    agent_server: Server,
) -> None:
    """Inline completion sends the text before the cursor again at each pause: the agent
    reuses the KV cache of the earlier prompt instead of prefilling it again."""
    await wait_state(jp_fetch, "ready", timeout=30)
    document = "Ribosomes translate messenger RNA into proteins in every living cell. " * 6
    before = (await agent_health(agent_server.url, agent_server.token))["prefix_cache"]
    for text in (document, document + "They read codons"):
        response = await post(jp_fetch, "tasks", "complete", body={"text": text, "max_tokens": 2})
        assert events(response.body)[-1][0] == "result"
    after = (await agent_health(agent_server.url, agent_server.token))["prefix_cache"]
    assert after["hits"] > before["hits"]
    # the first prompt (more tokens than words) was not computed again
    assert after["reused_tokens"] - before["reused_tokens"] >= len(document.split())


def test_no_torch_in_the_server_extension() -> None:
    code = "import sys, galactica_ext.server; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip() == "False"
