"""A bounded API fuzz of the server extension's routes (hypothesis): whatever a browser
sends to ``/galactica/*``, the answer is never a 5xx, and every error is JSON with a
``message``; a task answers either an event stream or such an error.

The server runs for real (pytest-jupyter); its remote backends are closed ports (a task that
passes validation ends quickly in an ``error`` event), and its agent command exits at once,
so no example can start a model. Hypothesis runs in a thread with a blocking client while
the server's event loop goes on.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import events

from galactica_ext import tasks

pytest_plugins = ("pytest_jupyter.jupyter_server",)

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)

#: JSON scalars, with the awkward ones: huge and non-finite numbers, lone surrogates, NULs
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["\ud800", "a\x00b", "125m", "", " ", "8bit", "cpu", "x" * 300]),
    st.sampled_from(["default", "other", "http://127.0.0.1:9/v1"]),  # remotes, a URL
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
#: fields the routes know, and some they don't
model_fields = st.sampled_from(["model", "url", "remote", "dtype", "device", "quantize", "gpu"])
task_fields = st.sampled_from(
    ["text", "max_tokens", "temperature", "top_p", "n", "seed", "top_k", "bogus"]
)


def bodies(fields: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Request bodies: objects of known and unknown fields, any JSON, deep nesting, junk."""
    objects = st.dictionaries(fields, json_values, max_size=4)
    depth = st.integers(min_value=1, max_value=5000)
    return st.one_of(
        objects.map(json.dumps),
        json_values.map(json.dumps),
        depth.map(lambda d: "[" * d + "]" * d),
        depth.map(lambda d: '{"text": ' + "[" * d + "]" * d + "}"),
        st.text(max_size=30),
    )


@pytest.fixture
def jp_server_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("GALACTICA_RUNTIME_FILE", str(tmp_path / "agent.json"))
    return {
        "ServerApp": {"jpserver_extensions": {"galactica_ext": True}},
        "Galactica": {
            "remote_url": "http://127.0.0.1:9/v1",
            "remotes": {"other": "http://127.0.0.1:9/other/v1"},
            "reuse_agent": False,
            "start": "manual",
            "agent_command": ["false"],
            "max_restarts": 0,
        },
    }


def check(response: httpx.Response) -> None:
    """No 5xx; a 4xx is a JSON object with a message; a task's 200 is an event stream."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("message"), str), body
    elif response.headers.get("content-type", "").startswith("text/event-stream"):
        got = events(response.text)
        assert got and got[-1][0] in ("result", "error"), got
    else:
        assert isinstance(response.json(), dict)


@pytest.fixture
def api(jp_serverapp: Any, jp_fetch: Any, jp_base_url: str, jp_http_port: int) -> dict[str, Any]:
    return {
        "base_url": f"http://localhost:{jp_http_port}{jp_base_url}galactica/",
        "headers": {"Authorization": f"token {jp_serverapp.identity_provider.token}"},
        "timeout": 60,
    }


@pytest.mark.timeout(120)
async def test_model_route_fuzz(api: dict[str, Any]) -> None:
    @FUZZ
    @given(body=bodies(model_fields), method=st.sampled_from(["POST", "POST", "POST", "GET"]))
    def fuzz(body: str, method: str) -> None:
        with httpx.Client(**api) as client:
            path = "model" if method == "POST" else "status"
            check(client.request(method, path, content=body if method == "POST" else None))
            check(client.get("status"))

    await asyncio.to_thread(fuzz)


@pytest.mark.timeout(120)
async def test_task_route_fuzz(api: dict[str, Any]) -> None:
    @FUZZ
    @given(task=st.sampled_from([*tasks.TASKS, "summarize", "nope"]), body=bodies(task_fields))
    def fuzz(task: str, body: str) -> None:
        with httpx.Client(**api) as client:
            check(client.post(f"tasks/{task}", content=body))

    await asyncio.to_thread(fuzz)


@pytest.mark.timeout(120)
async def test_valid_looking_task_options_fuzz(api: dict[str, Any]) -> None:
    """Bodies with a real text and option values of the right kinds but any size."""
    options = st.fixed_dictionaries(
        {"text": st.text(min_size=1, max_size=200)},
        optional={
            "max_tokens": st.integers(min_value=-(2**65), max_value=2**65),
            "temperature": st.floats(allow_nan=False, allow_infinity=False) | st.integers(),
            "top_p": st.floats(allow_nan=False, allow_infinity=False),
            "n": st.integers(min_value=-(2**65), max_value=2**65),
            "seed": st.integers(min_value=-(2**70), max_value=2**70),
        },
    )

    @FUZZ
    @given(task=st.sampled_from(tasks.TASKS), body=options)
    def fuzz(task: str, body: dict[str, Any]) -> None:
        with httpx.Client(**api) as client:
            check(client.post(f"tasks/{task}", content=json.dumps(body)))

    await asyncio.to_thread(fuzz)
