"""Remote model servers are the server's configuration: a browser chooses among the remotes
the admin configured, by name; it can never name a URL, the API key goes only to the URL it
was configured for, and a remote's response bodies never reach ``/galactica/status``.

The remotes are our real agent (``agent_server``), :class:`agent_fixtures.RawServer` (a
socket server that records what it was sent, or answers 500s) and a closed port.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from agent_fixtures import RAW_SECRET, RawServer, Server
from server_helpers import events, post, wait_state
from tornado.httpclient import HTTPClientError

pytest_plugins = ("pytest_jupyter.jupyter_server",)


@pytest.fixture
def jp_server_config(
    agent_server: Server, raw_server: RawServer, tmp_path: Any, monkeypatch: Any
) -> Any:
    monkeypatch.setenv("GALACTICA_RUNTIME_FILE", str(tmp_path / "agent.json"))
    return {
        "ServerApp": {"jpserver_extensions": {"galactica_ext": True}},
        "Galactica": {
            "remote_url": agent_server.url + "/v1",
            "remote_api_key": agent_server.token,
            "remotes": {
                "raw": {"url": raw_server.url + "/v1", "api_key": "raw-key"},
                "dead": "http://127.0.0.1:9/v1",
            },
            "reuse_agent": False,
            "start": "manual",
        },
    }


async def test_a_browser_cannot_name_a_url(jp_fetch: Any, raw_server: RawServer) -> None:
    await wait_state(jp_fetch, "ready", timeout=30)
    with pytest.raises(HTTPClientError) as err:
        await post(jp_fetch, "model", body={"url": raw_server.url + "/elsewhere"})
    assert err.value.code == 400
    message = json.loads(err.value.response.body)["message"]
    assert "set by the server's configuration" in message and "dead, default, raw" in message
    status = await wait_state(jp_fetch, "ready", timeout=5)
    assert status["remote"] == "default" and status["remotes"] == ["dead", "default", "raw"]
    assert raw_server.authorizations == []  # nothing was sent anywhere


async def test_switching_among_configured_remotes(
    jp_fetch: Any, agent_server: Server, raw_server: RawServer
) -> None:
    await wait_state(jp_fetch, "ready", timeout=30)
    response = await post(jp_fetch, "model", body={"remote": "raw"})
    assert response.code == 202
    status = await wait_state(jp_fetch, "ready", timeout=30)
    assert status["remote"] == "raw" and status["url"] == raw_server.url + "/v1"
    # its own key, and only its own
    assert raw_server.authorizations and set(raw_server.authorizations) == {"Bearer raw-key"}
    # back to the local backend (what the sidebar's local models do), then the default remote
    response = await jp_fetch("galactica", "model", method="DELETE")
    assert json.loads(response.body)["backend"] == "local"
    response = await post(jp_fetch, "model", body={"remote": "default"})
    status = await wait_state(jp_fetch, "ready", timeout=30)
    assert status["backend"] == "remote" and status["model"] == agent_server.model
    response = await post(jp_fetch, "model", body={"url": ""})  # the older "back to local"
    assert json.loads(response.body)["backend"] == "local"


async def test_unreachable_remote_fails_visibly(jp_fetch: Any) -> None:
    response = await post(jp_fetch, "model", body={"remote": "dead"})
    assert response.code == 202
    status = await wait_state(jp_fetch, "failed", timeout=20)
    assert "127.0.0.1:9" in status["error"] and "cannot reach" in status["error"]
    response = await post(jp_fetch, "tasks", "summarise", body={"text": "A cell."})
    name, data = events(response.body)[-1]
    assert name == "error" and "127.0.0.1:9" in data["message"]


async def test_a_remotes_error_body_is_not_reflected(jp_fetch: Any, raw_server: RawServer) -> None:
    raw_server.mode = "broken"
    await post(jp_fetch, "model", body={"remote": "raw"})
    status = await wait_state(jp_fetch, "failed", timeout=20)
    assert "HTTP 500" in status["error"] and "remote server raw" in status["error"]
    assert RAW_SECRET.decode() not in json.dumps(status)
    assert "\n" not in status["error"] and "Traceback" not in status["error"]
