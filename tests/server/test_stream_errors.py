"""The server extension passes a model server's failure on as an ``error`` event, never as a
``result``: a stream that ends without ``[DONE]``, and an error event mid-stream.

The model server here is :class:`agent_fixtures.RawServer`, a real socket server that
misbehaves on purpose (the real agent does not cut its streams on request).
"""

from __future__ import annotations

from typing import Any

import pytest
from agent_fixtures import RawServer
from server_helpers import events, post, wait_state

from galactica_ext.client import STREAM_CUT

pytest_plugins = ("pytest_jupyter.jupyter_server",)


@pytest.fixture
def jp_server_config(raw_server: RawServer, tmp_path: Any, monkeypatch: Any) -> Any:
    monkeypatch.setenv("GALACTICA_RUNTIME_FILE", str(tmp_path / "agent.json"))
    return {
        "ServerApp": {"jpserver_extensions": {"galactica_ext": True}},
        "Galactica": {"remote_url": raw_server.url + "/v1", "reuse_agent": False},
    }


@pytest.mark.parametrize(
    ("mode", "says"), [("cut", STREAM_CUT), ("error", "the sampler failed on this sequence")]
)
async def test_a_failed_stream_is_an_error_event(
    jp_fetch: Any, raw_server: RawServer, mode: str, says: str
) -> None:
    raw_server.mode = mode
    await wait_state(jp_fetch, "ready", timeout=30)
    response = await post(jp_fetch, "tasks", "complete", body={"text": "x", "max_tokens": 5})
    got = events(response.body)
    assert got[-1][0] == "error" and says in got[-1][1]["message"], got
    assert "result" not in [name for name, _ in got]
    assert [name for name, _ in got[:-1]] == ["token"] * (len(got) - 1)
