"""An API fuzzer for the agent's routes, against the real agent on the tiny checkpoint.

Hypothesis draws requests (near-valid completions with one field spoiled, any JSON, raw
bytes, odd methods and tokens); every answer must be below 500, every error JSON naming what
was wrong, every stream must end with ``[DONE]``, and the agent must still serve afterwards.
Bounded: generation is kept to a few tokens, and the examples to about 60 a test.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from galactica_ext.protocol import CONTEXT_LENGTH, VOCAB_SIZE

#: the same examples every run (a suite must not fail by chance); GALACTICA_FUZZ_EXPLORE=1 draws
#: new ones, e.g. ``GALACTICA_FUZZ_EXPLORE=1 pytest tests/test_fuzz_agent.py``
EXPLORE = bool(os.environ.get("GALACTICA_FUZZ_EXPLORE"))
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=not EXPLORE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
#: generated tokens per choice at most: a fuzzer is about answers, not about generating
MAX_NEW = 6

token = st.integers(0, VOCAB_SIZE - 1)
text = st.text(min_size=1, max_size=30)
json_value = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False),  # NaN and infinities are not JSON
        st.text(max_size=20),
        st.sampled_from(["\ud800", "x" * 300, "50000", "-1", "", "cuda:0", "125m"]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
edge = st.sampled_from([-(2**63) - 1, -1, 0, 1, 3e-39, 16, 17, 21, 2048, VOCAB_SIZE, 2**64])
near_valid = st.fixed_dictionaries(
    {"prompt": st.one_of(text, st.lists(token, min_size=1, max_size=20))},
    optional={
        "max_tokens": st.integers(1, MAX_NEW),
        "temperature": st.one_of(st.just(0), st.floats(0.01, 2.0)),
        "top_p": st.floats(0.001, 1.0),
        "top_k": st.integers(-1, 100),
        "n": st.integers(1, 4),
        "stop": st.one_of(text, st.lists(text, max_size=3)),
        "stop_token_ids": st.lists(token, max_size=5),
        "logprobs": st.integers(0, 5),
        "logit_bias": st.dictionaries(token.map(str), st.floats(-100, 100), max_size=5),
        "seed": st.integers(0, 2**32),
        "stream": st.booleans(),
        "use_beam_search": st.booleans(),
        "ignore_eos": st.booleans(),
        "truncate_prompt_tokens": st.integers(1, 50),
        "guided_choice": st.lists(text, min_size=1, max_size=3),
    },
)


@st.composite
def completion_bodies(draw: st.DrawFn) -> dict:
    """A near-valid body with (usually) one field spoiled by junk."""
    body = draw(near_valid)
    if draw(st.booleans()):
        name = draw(st.sampled_from([*near_valid_fields(), "model", "min_tokens", "echo"]))
        body[name] = draw(st.one_of(json_value, edge))
    max_tokens = body.get("max_tokens")
    if type(max_tokens) is int and MAX_NEW < max_tokens < CONTEXT_LENGTH:
        body["max_tokens"] = MAX_NEW  # a valid but long generation: keep the fuzzer quick
    body.setdefault("max_tokens", MAX_NEW)
    return body


def near_valid_fields() -> list[str]:
    return ["prompt", "max_tokens", "temperature", "top_p", "top_k", "n", "stop",
            "stop_token_ids", "logprobs", "logit_bias", "seed", "stream", "use_beam_search",
            "truncate_prompt_tokens", "guided_choice"]  # fmt: skip


@pytest.fixture(scope="module")
def http(agent_server) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {agent_server.token}"}
    with httpx.Client(base_url=agent_server.url, headers=headers, timeout=120) as client:
        yield client
    # the agent still serves after everything the fuzzer sent
    with httpx.Client(base_url=agent_server.url, headers=headers, timeout=120) as client:
        assert client.get("/health").json()["status"] == "ready"
        reply = client.post("/v1/completions", json={"prompt": "still", "max_tokens": 2})
        assert reply.status_code == 200


def check(reply: httpx.Response, body: bytes) -> None:
    """Below 500; an error is OpenAI's JSON error object; a stream ends with [DONE]."""
    assert reply.status_code < 500, body[:2000]
    kind = reply.headers.get("content-type", "")
    if reply.status_code >= 400:
        assert kind.startswith("application/json"), body[:200]
        error = json.loads(body)["error"]
        assert isinstance(error["message"], str) and error["message"]
    elif kind.startswith("text/event-stream"):
        lines = [line for line in body.decode().splitlines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        assert all("error" not in json.loads(line[6:]) for line in lines[:-1])
    else:
        json.loads(body)


def send(http: httpx.Client, method: str, path: str, **kwargs) -> None:
    with http.stream(method, path, **kwargs) as reply:
        body = reply.read()
    check(reply, body)


@FUZZ
@given(body=completion_bodies())
def test_completions_fuzz(http: httpx.Client, body: dict) -> None:
    send(http, "POST", "/v1/completions", content=json.dumps(body).encode())


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=300),
        json_value.map(lambda v: json.dumps(v).encode()),
        st.integers(1, 5000).map(lambda depth: b"[" * depth + b"]" * depth),
        st.integers(1, 5000).map(lambda depth: b'{"prompt":' * depth),
    ),
    path=st.sampled_from(["/v1/completions", "/v1/load"]),
)
def test_raw_bodies_fuzz(http: httpx.Client, raw: bytes, path: str) -> None:
    send(http, "POST", path, content=raw, headers={"Content-Type": "application/json"})


@FUZZ
@given(
    body=st.dictionaries(
        st.sampled_from(["model", "dtype", "device", "quantize", "other"]), json_value
    )
)
def test_load_fuzz(http: httpx.Client, body: dict) -> None:
    with http.stream("POST", "/v1/load", content=json.dumps(body).encode()) as reply:
        data = reply.read()
    check(reply, data)
    assert reply.status_code != 202, "the fuzzer must never swap the shared agent's model"


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    path=st.one_of(
        st.sampled_from(["/health", "/v1/models", "/v1/completions", "/v1/load", "/x", "/v1"]),
        st.text(alphabet="abcxyz/%.-_~0123456789", max_size=30).map(lambda p: "/" + p),
    ),
    auth=st.one_of(
        st.none(),
        st.just("good"),
        # h11 refuses header values with spaces at either end: that is the client's rule
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(
            str.strip
        ),
    ),
)
def test_routes_methods_and_tokens_fuzz(
    http: httpx.Client, agent_server, method: str, path: str, auth: str | None
) -> None:
    if path.rstrip("/") == "/v1/unload" or (method == "POST" and path == "/v1/load"):
        return  # would unload or load the shared agent's model
    headers = {}
    if auth == "good":
        headers["Authorization"] = f"Bearer {agent_server.token}"
    elif auth:
        headers["Authorization"] = auth
    with (
        httpx.Client(base_url=agent_server.url, timeout=60) as bare,
        bare.stream(method, path, headers=headers) as reply,
    ):
        body = reply.read()
    if method == "HEAD":
        assert reply.status_code < 500
        return
    check(reply, body)
    if auth != "good":
        assert reply.status_code == 401
