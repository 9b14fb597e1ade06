"""The server extension's routes, through a real Jupyter server (pytest-jupyter).

Two backends: a scripted OpenAI-compatible server (``fake_openai``) for exact answers,
streaming and abort; and the real local agent, started and supervised by the extension,
on a random-weight ``tiny`` GALACTICA checkpoint (loading, tasks, crash and restart).

Run: ``pytest galactica_ext/server/tests``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tornado.httpclient import HTTPClientError

from .fake_openai import MODEL_ID, FakeOpenAI

pytest_plugins = ("pytest_jupyter.jupyter_server",)

ROOT = Path(__file__).resolve().parents[3]


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


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(chunk_delay=0.01).start()
    yield server
    server.stop()


@pytest.fixture
def jp_server_config(fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("GALACTICA_RUNTIME_FILE", str(tmp_path / "agent.json"))
    return {
        "ServerApp": {"jpserver_extensions": {"galactica_ext": True}},
        "Galactica": {"remote_url": fake.url, "reuse_agent": False},
    }


async def wait_state(jp_fetch: Any, state: str, timeout: float = 120.0) -> dict[str, Any]:
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


# --- status and remote backend ---------------------------------------------------------


async def test_status_reports_the_remote_model(jp_fetch: Any, fake: FakeOpenAI) -> None:
    status = await wait_state(jp_fetch, "ready", timeout=20)
    assert status["model"] == MODEL_ID
    assert status["backend"] == "remote"
    assert status["url"] == fake.url
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
    }


async def test_cite_streams_tokens_then_suggestions(jp_fetch: Any, fake: FakeOpenAI) -> None:
    await wait_state(jp_fetch, "ready", timeout=20)
    response = await post(jp_fetch, "tasks", "cite", body={"text": "Attention models", "n": 3})
    assert response.headers["Content-Type"].startswith("text/event-stream")
    got = events(response.body)
    names = [name for name, _ in got]
    assert names[-1] == "result" and set(names[:-1]) == {"token"}
    result = got[-1][1]
    assert [s["title"] for s in result["suggestions"]] == [
        "Attention is all you need",
        "BERT: Pre-training of Deep Bidirectional Transformers",
        "Language Models are Few-Shot Learners",
    ]
    assert result["suggestions"][0]["author"] == "Ashish Vaswani"
    assert result["truncated"] is False
    sent = fake.requests[-1]
    assert sent["prompt"].endswith("[START_REF]")
    assert sent["skip_special_tokens"] is False
    assert sent["stop_token_ids"] == [5]
    assert sent["use_beam_search"] is True and sent["n"] == 3
    assert sent["model"] == MODEL_ID
    # the streamed text of suggestion 0 is what was parsed
    streamed = "".join(d["text"] for n, d in got if n == "token" and d["index"] == 0)
    assert streamed.strip() == "Attention is all you need, Ashish Vaswani"


@pytest.mark.parametrize(
    ("task", "text", "key", "expected"),
    [
        ("equation", "the energy of a body at rest", "latex", "E = m c^{2}"),
        ("summarise", "A cell.", "text", "The cell explains how the fake model answers."),
        ("ask", "What is six times seven?", "text", "Forty-two."),
        ("work", "What is six times seven?", "text", "6 * 7 = 42"),
        ("complete", "The transformer", "text", " and the ghost text continues here."),
    ],
)
async def test_each_task_streams_and_parses(
    jp_fetch: Any, task: str, text: str, key: str, expected: str
) -> None:
    await wait_state(jp_fetch, "ready", timeout=20)
    response = await post(jp_fetch, "tasks", task, body={"text": text, "max_tokens": 64})
    got = events(response.body)
    assert got[-1][0] == "result"
    assert got[-1][1][key] == expected
    assert any(name == "token" for name, _ in got)


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
        ("model", {"url": "ftp://x"}, "http"),
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


async def test_browser_abort_cancels_the_generation(
    jp_serverapp: Any, jp_fetch: Any, jp_base_url: str, jp_http_port: int, fake: FakeOpenAI
) -> None:
    await wait_state(jp_fetch, "ready", timeout=20)
    fake.chunk_delay = 0.2  # ~15 chunks: 3 s if nobody stops it
    url = f"http://localhost:{jp_http_port}{jp_base_url}galactica/tasks/complete"
    headers = {"Authorization": f"token {jp_serverapp.identity_provider.token}"}
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream(
            "POST", url, content=json.dumps({"text": "The transformer"}), headers=headers
        ) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("event: token"):
                break  # the first token: now close the connection
    before = fake.completed
    deadline = time.monotonic() + 5
    while fake.cancelled == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert fake.cancelled == 1
    assert fake.completed == before


async def test_switch_to_local_and_back(jp_fetch: Any, fake: FakeOpenAI) -> None:
    await wait_state(jp_fetch, "ready", timeout=20)
    response = await jp_fetch("galactica", "model", method="DELETE")
    assert json.loads(response.body)["state"] == "stopped"
    assert json.loads(response.body)["backend"] == "local"
    response = await post(jp_fetch, "model", body={"url": fake.url})
    assert response.code == 202
    status = await wait_state(jp_fetch, "ready", timeout=20)
    assert status["backend"] == "remote"


async def test_unreachable_remote_fails_visibly(jp_fetch: Any) -> None:
    response = await post(jp_fetch, "model", body={"url": "http://127.0.0.1:9/v1"})
    assert response.code == 202
    status = await wait_state(jp_fetch, "failed", timeout=20)
    assert "127.0.0.1:9" in status["error"]
    response = await post(jp_fetch, "tasks", "summarise", body={"text": "A cell."})
    name, data = events(response.body)[-1]
    assert name == "error" and "127.0.0.1:9" in data["message"]


def test_no_torch_in_the_server_extension() -> None:
    import subprocess

    code = "import sys, galactica_ext.server; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip() == "False"
