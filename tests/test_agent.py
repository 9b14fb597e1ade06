"""The agent as a real subprocess on the tiny checkpoint, spoken to over HTTP."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from galactica_ext.agent.launcher import start_agent
from galactica_ext.agent.runtime import AgentInfo, is_stale, read_runtime, read_runtime_file
from galactica_ext.checkpoints import build_random_checkpoint

FORCE_END_REF = {"logit_bias": {"5": 100}, "min_tokens": 3}


class Agent:
    def __init__(self, proc: subprocess.Popen, info: AgentInfo, runtime: Path) -> None:
        self.proc, self.info, self.runtime = proc, info, runtime
        self.http = httpx.Client(base_url=info.url, headers=info.headers, timeout=60)

    def wait_ready(self, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = self.http.get("/health").json()
            if health["status"] in ("ready", "failed"):
                return health
            time.sleep(0.1)
        raise TimeoutError("agent not ready")

    def complete(self, **body) -> httpx.Response:
        return self.http.post("/v1/completions", json=body)

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


def launch(tmp: Path, model: str | None = None) -> Agent:
    runtime = tmp / f"agent-{len(list(tmp.iterdir()))}.json"
    proc, info = start_agent(
        model, runtime=runtime, dtype="float32", device="cpu", timeout=120, die_with_parent=True
    )
    return Agent(proc, info, runtime)


@pytest.fixture(scope="module")
def agent(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    running = launch(tmp_path_factory.mktemp("agent"), model=str(tiny_checkpoint))
    assert running.wait_ready()["status"] == "ready"
    yield running
    running.stop()


def stream_events(response: httpx.Response) -> list[dict]:
    events = []
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            events.append(json.loads(line[6:]))
    return events


def test_health_and_models(agent: Agent, tiny_checkpoint: Path) -> None:
    health = agent.http.get("/health").json()
    assert health["status"] == "ready" and health["model"] == str(tiny_checkpoint)
    assert health["dtype"] == "float32" and health["device"] == "cpu" and health["memory_bytes"] > 0
    # the agent measures its threads by default (engine/thread_tuner.py) and says what it chose
    cores = len(os.sched_getaffinity(0))
    assert set(health["threads"]) == {"step", "prompt"}
    assert all(1 <= n <= cores for n in health["threads"].values())
    models = agent.http.get("/v1/models").json()
    assert [m["id"] for m in models["data"]] == [str(tiny_checkpoint)]


def test_auth_required_everywhere(agent: Agent) -> None:
    for method, path in [
        ("GET", "/health"),
        ("GET", "/v1/models"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/load"),
        ("POST", "/v1/unload"),
        ("GET", "/nope"),
    ]:
        bare = httpx.request(method, agent.info.url + path, json={"prompt": "x"})
        assert bare.status_code == 401, path
        assert "bearer token" in bare.json()["error"]["message"]
        wrong = httpx.request(
            method, agent.info.url + path, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401, path


def test_runtime_file_private_and_live(agent: Agent) -> None:
    mode = stat.S_IMODE(os.stat(agent.runtime).st_mode)
    assert mode == 0o600
    info = read_runtime(agent.runtime)
    assert (
        info is not None and info.pid == agent.proc.pid and info.url.startswith("http://127.0.0.1:")
    )


def test_whole_completion_with_usage(agent: Agent) -> None:
    reply = agent.complete(
        prompt="The Transformer architecture", max_tokens=5, temperature=0, ignore_eos=True
    )
    assert reply.status_code == 200
    body = reply.json()
    assert body["object"] == "text_completion" and len(body["choices"]) == 1
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}


def test_streaming_in_order_equals_whole(agent: Agent) -> None:
    body = {
        "prompt": "Photosynthesis converts",
        "max_tokens": 12,
        "temperature": 0,
        "ignore_eos": True,
    }
    whole = agent.complete(**body).json()["choices"][0]["text"]
    with agent.http.stream("POST", "/v1/completions", json={**body, "stream": True}) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = stream_events(reply)
    pieces = [e["choices"][0]["text"] for e in events]
    assert "".join(pieces) == whole
    assert len([p for p in pieces if p]) > 1
    assert events[-1]["choices"][0]["finish_reason"] == "length"


def test_stops_on_end_ref_token_and_string(agent: Agent) -> None:
    by_id = agent.complete(
        prompt="Attention [START_REF]",
        max_tokens=20,
        temperature=0,
        stop_token_ids=[5],
        **FORCE_END_REF,
    ).json()
    choice = by_id["choices"][0]
    assert (
        choice["finish_reason"] == "stop" and choice["text"] and "[END_REF]" not in choice["text"]
    )
    assert by_id["usage"]["completion_tokens"] == 4
    # the special token as a stop *string* (what clients of other servers send)
    by_text = agent.complete(
        prompt="Attention [START_REF]",
        max_tokens=20,
        temperature=0,
        stop=["[END_REF]"],
        logit_bias={"5": 100},
    ).json()
    assert by_text["choices"][0] == {**by_text["choices"][0], "text": "", "finish_reason": "stop"}
    assert by_text["usage"]["completion_tokens"] == 1
    # without a stop the special token stays in the raw text (skip_special_tokens is false)
    raw = agent.complete(
        prompt="Attention [START_REF]",
        max_tokens=5,
        temperature=0,
        ignore_eos=True,
        logit_bias={"5": 100},
    ).json()["choices"][0]["text"]
    assert raw == "[END_REF]" * 5


def test_stop_string_spanning_tokens(agent: Agent) -> None:
    body = {
        "prompt": "Photosynthesis converts",
        "max_tokens": 6,
        "temperature": 0,
        "ignore_eos": True,
        "logprobs": 0,
    }
    free = agent.complete(**body).json()["choices"][0]
    tokens = free["logprobs"]["tokens"]
    stop = tokens[2][-1] + tokens[3]  # the last character of token 3 and all of token 4
    stopped = agent.complete(**{**body, "stop": [stop]}).json()["choices"][0]
    assert stopped["finish_reason"] == "stop"
    assert stopped["text"] == free["text"][: free["text"].index(stop)]
    assert len(stopped["text"]) < len(free["text"])


def test_n_suggestions_by_beam_search(agent: Agent) -> None:
    body = agent.complete(
        prompt="Attention [START_REF]", max_tokens=6, n=3, use_beam_search=True
    ).json()
    texts = [c["text"] for c in body["choices"]]
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert len(set(texts)) == 3  # distinct beams


def test_prefix_reuse_matches_cold_run(agent: Agent, tiny_model) -> None:
    from galactica_ext.engine import SamplingParams

    document = "The mitochondria is the powerhouse of the cell. " * 8
    before = agent.http.get("/health").json()["prefix_cache"]
    agent.complete(prompt=document, max_tokens=2, temperature=0)
    grown = document + "It makes ATP"
    warm = agent.complete(prompt=grown, max_tokens=10, temperature=0, ignore_eos=True).json()
    after = agent.http.get("/health").json()["prefix_cache"]
    assert after["hits"] > before["hits"] and after["reused_tokens"] > before["reused_tokens"]
    cold = tiny_model.engine.generate(grown, SamplingParams(max_tokens=10, ignore_eos=True))[0]
    assert warm["choices"][0]["text"] == cold.text


def test_disconnect_cancels_and_frees_the_model(agent: Agent) -> None:
    body = {
        "prompt": "Long",
        "max_tokens": 2000,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
    }
    before = agent.http.get("/health").json()["disconnected"]
    with agent.http.stream("POST", "/v1/completions", json=body) as reply:
        for line in reply.iter_lines():
            if line.startswith("data: "):
                break
    deadline = time.monotonic() + 60
    while agent.http.get("/health").json()["queue"]["running"] and time.monotonic() < deadline:
        time.sleep(0.02)
    health = agent.http.get("/health").json()
    assert health["queue"] == {"running": 0, "waiting": 0}
    # cut off mid-generation (2,000 tokens take far longer than the first one)
    assert health["disconnected"] == before + 1
    assert agent.complete(prompt="Next", max_tokens=2).status_code == 200


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "x", "max_tokens": -1}, "max_tokens"),
        ({"prompt": "x", "max_tokens": 10**9}, "max_tokens"),
        ({"prompt": "x", "max_tokens": "ten"}, "max_tokens"),
        ({"prompt": ""}, "prompt"),
        ({}, "prompt"),
        ({"prompt": "x", "temperature": -1}, "temperature"),
        ({"prompt": "x", "top_p": 0}, "top_p"),
        ({"prompt": "x", "n": 99}, "n"),
        ({"prompt": "x", "stop": 5}, "stop"),
        ({"prompt": "x", "logprobs": 50}, "logprobs"),
        ({"prompt": "x", "presence_penalty": 1}, "presence_penalty"),
        ({"prompt": "word " * 2100, "max_tokens": 16}, "prompt"),
    ],
)
def test_bad_requests_get_json_400_and_agent_keeps_serving(
    agent: Agent, body: dict, param: str
) -> None:
    reply = agent.complete(**body)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == param and error["message"]
    assert agent.complete(prompt="still there", max_tokens=1).status_code == 200


def test_malformed_json_and_unknown_model(agent: Agent) -> None:
    reply = agent.http.post(
        "/v1/completions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert reply.status_code == 400 and "not valid JSON" in reply.json()["error"]["message"]
    reply = agent.complete(prompt="x", model="facebook/galactica-120b")
    assert reply.status_code == 404 and reply.json()["error"]["code"] == "model_not_found"
    reply = agent.http.post("/v1/load", json={"model": "gigantic"})
    assert reply.status_code == 400 and "125m" in reply.json()["error"]["message"]
    assert agent.http.post("/nowhere").status_code == 404
    assert agent.complete(prompt="still there", max_tokens=1).status_code == 200


def test_queue_full_answers_503_with_retry_after(tiny_checkpoint: Path) -> None:
    """The real agent app, served in this process so the test can hold its engine: a request
    whose constraint hook waits keeps the single batch slot busy for as long as the test
    needs (no race with how fast the model decodes)."""
    import asyncio

    from tornado.httpserver import HTTPServer
    from tornado.ioloop import IOLoop
    from tornado.netutil import bind_sockets

    from galactica_ext.agent.app import make_app
    from galactica_ext.agent.host import ModelHost
    from galactica_ext.engine.sampling import SamplingParams

    host = ModelHost(max_batch=1, max_queue=1)
    host.load(str(tiny_checkpoint), dtype="float32", device="cpu")
    host.wait(timeout=120)
    assert host.status == "ready", host.error
    engine = host.serving_model.engine
    reached, release = threading.Event(), threading.Event()

    def hold(batch_id: int, ids: object) -> list[int]:
        reached.set()
        release.wait(timeout=120)
        return []

    holder = engine.submit("Hold", SamplingParams(max_tokens=2, prefix_allowed_tokens_fn=hold))
    sockets = bind_sockets(0, "127.0.0.1")
    url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    loops: list[IOLoop] = []
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        HTTPServer(make_app(host, "secret")).add_sockets(sockets)
        loops.append(IOLoop.current())
        started.set()
        loops[0].start()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    assert started.wait(timeout=30) and reached.wait(timeout=60)
    headers = {"Authorization": "Bearer secret"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            queued = threading.Thread(
                target=lambda: http.post("/v1/completions", json={"prompt": "x", "max_tokens": 1})
            )
            queued.start()
            deadline = time.monotonic() + 30
            while http.get("/health").json()["queue"]["waiting"] < 1:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            third = http.post("/v1/completions", json={"prompt": "y", "max_tokens": 1})
            assert third.status_code == 503
            assert third.headers["Retry-After"] and third.json()["error"]["code"] == "queue_full"
            release.set()
            holder.wait()
            queued.join(timeout=60)
            assert not queued.is_alive()
            assert http.get("/health").json()["queue"] == {"running": 0, "waiting": 0}
            again = http.post("/v1/completions", json={"prompt": "x", "max_tokens": 1})
            assert again.status_code == 200
    finally:
        release.set()
        loops[0].add_callback(loops[0].stop)
        server.join(timeout=30)
        host.close()


def test_failed_load_reported_in_health(tmp_path: Path) -> None:
    empty = tmp_path / "no-weights"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    running = launch(tmp_path, model=str(empty))
    try:
        health = running.wait_ready()
        assert health["status"] == "failed" and health["error"]
        reply = running.complete(prompt="x")
        assert reply.status_code == 503 and "failed to load" in reply.json()["error"]["message"]
    finally:
        running.stop()


def test_missing_model_path_named_in_health(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    running = launch(tmp_path, model=str(missing))
    try:
        health = running.wait_ready()
        assert health["status"] == "failed" and str(missing) in health["error"]
    finally:
        running.stop()


def test_stale_runtime_file_recognised(tmp_path: Path) -> None:
    from galactica_ext.agent.runtime import write_runtime

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = write_runtime(AgentInfo("http://127.0.0.1:1", "t", dead.pid, "m"), tmp_path / "r.json")
    assert is_stale(path) and read_runtime(path) is None


# ------------------------------------------------------------------ hardening (issue 8)


def raw_request(url: str, head: str) -> tuple[int, dict]:
    """Send only a request's head (no body bytes) on a raw socket; the status and JSON reply.

    The server must answer without the body: it checks the token and the declared size first.
    """
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data:
                header, _, rest = data.partition(b"\r\n\r\n")
                length = re.search(rb"Content-Length: (\d+)", header, re.IGNORECASE)
                if length and len(rest) >= int(length.group(1)):
                    break
    header, _, rest = data.partition(b"\r\n\r\n")
    status = int(header.split()[1])
    length = int(re.search(rb"Content-Length: (\d+)", header, re.IGNORECASE).group(1))
    return status, json.loads(rest[:length])


def test_token_and_size_checked_before_the_body_is_read(agent: Agent) -> None:
    big = 100 * 2**20
    head = (
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
        f"Content-Type: application/json\r\nContent-Length: {big}\r\n\r\n"
    )
    status, body = raw_request(agent.info.url, head)
    assert status == 401 and "bearer token" in body["error"]["message"]
    head = head.replace("Bearer wrong", f"Bearer {agent.info.token}")
    status, body = raw_request(agent.info.url, head)
    assert status == 413 and body["error"]["code"] == "body_too_large"
    assert "MiB" in body["error"]["message"]
    assert agent.complete(prompt="still there", max_tokens=1).status_code == 200


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"prompt": "x", "temperature": 3e-39}, "temperature", "use 0 for greedy"),
        ({"prompt": "x", "seed": 2**64}, "seed", "64-bit"),
        ({"prompt": "x", "seed": -(2**63) - 1}, "seed", "64-bit"),
        ({"prompt": "x", "logit_bias": {"50000": 1}}, "logit_bias", "49999"),
        ({"prompt": "x", "logit_bias": {str(i): 1 for i in range(50_000)}}, "logit_bias", "300"),
        ({"prompt": "x", "stop_token_ids": [50_000]}, "stop_token_ids", "49999"),
        ({"prompt": "x", "stop_token_ids": list(range(65))}, "stop_token_ids", "64"),
        ({"prompt": [1, 50_000]}, "prompt", "49999"),
        ({"prompt": "x", "model": "m" * 256}, "model", "255 bytes"),
        ({"prompt": "x", "top_k": 50_001}, "top_k", "50000"),
        ({"prompt": "x" * (64 * 1024 + 1)}, "prompt", "truncate_prompt_tokens"),
        ({"prompt": "x", "structured_outputs": {"choice": []}}, "structured_outputs.choice", "1"),
        (
            {"prompt": "x", "guided_choice": ["a"], "structured_outputs": {"choice": ["b"]}},
            "guided_choice",
            "not both",
        ),
    ],
)
def test_bad_values_get_400_naming_field_and_limit(
    agent: Agent, body: dict, param: str, words: str
) -> None:
    reply = agent.complete(**body)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == param and words in error["message"]


def test_hostile_json_gets_400(agent: Agent) -> None:
    def post(raw: bytes) -> httpx.Response:
        return agent.http.post(
            "/v1/completions", content=raw, headers={"Content-Type": "application/json"}
        )

    deep = post(b"[" * 200_000 + b"]" * 200_000)
    assert deep.status_code == 400 and "nested" in deep.json()["error"]["message"]
    nested = post(
        json.dumps(
            {"prompt": "x", "user": functools.reduce(lambda a, _: [a], range(40), 1)}
        ).encode()
    )
    assert nested.status_code == 400 and "nested" in nested.json()["error"]["message"]
    surrogate = post(b'{"prompt": "abc \\ud800 def"}')
    assert surrogate.status_code == 400
    assert surrogate.json()["error"]["param"] == "prompt"
    assert "surrogate" in surrogate.json()["error"]["message"]
    wrong_method = agent.http.get("/v1/completions")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["message"]
    assert agent.complete(prompt="still there", max_tokens=1).status_code == 200


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": 5}, "model"),
        ({"model": ["125m"]}, "model"),
        ({"device": 0}, "device"),
        ({"device": "gpu"}, "device"),
        ({"dtype": {"a": 1}}, "dtype"),
        ({"model": "m" * 300}, "model"),
        ({"model": "/no/such/dir"}, "model"),
    ],
)
def test_load_rejects_bad_fields_and_keeps_the_model(agent: Agent, body: dict, param: str) -> None:
    reply = agent.http.post("/v1/load", json=body)
    assert reply.status_code == 400 and reply.json()["error"]["param"] == param
    assert agent.http.get("/health").json()["status"] == "ready"


def test_tiny_temperature_rejected_while_another_stream_completes(agent: Agent) -> None:
    body = {"prompt": "Long", "max_tokens": 40, "ignore_eos": True, "stream": True}
    with (
        httpx.Client(base_url=agent.info.url, headers=agent.info.headers, timeout=60) as other,
        other.stream("POST", "/v1/completions", json=body) as stream,
    ):
        lines = stream.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        bad = agent.complete(prompt="x", temperature=3e-39, max_tokens=5)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "temperature"
        rest = [first, *(line for line in lines if line.startswith("data: "))]
    assert rest[-1] == "data: [DONE]"
    events = [json.loads(line[6:]) for line in rest[:-1]]
    assert "error" not in events[-1] and events[-1]["choices"][0]["finish_reason"] == "length"


def test_long_text_is_cut_before_tokenising_when_truncating(agent: Agent) -> None:
    text = "The cell membrane surrounds the cytoplasm. " * 20_000  # ~860 KB
    reply = agent.complete(prompt=text, max_tokens=4, truncate_prompt_tokens=100, temperature=0)
    assert reply.status_code == 200, reply.text
    assert reply.json()["usage"]["prompt_tokens"] == 100
    whole = agent.complete(prompt=text[-5000:], max_tokens=4, truncate_prompt_tokens=100,
                           temperature=0)  # fmt: skip
    assert whole.json()["choices"][0]["text"] == reply.json()["choices"][0]["text"]


def test_runtime_file_never_follows_a_planted_symlink(tmp_path: Path) -> None:
    from galactica_ext.agent.runtime import write_runtime

    target = tmp_path / "victim"
    target.write_text("precious")
    path = tmp_path / "galactica-agent.json"
    for name in (f".{path.name}.{os.getpid()}.tmp", f".{path.name}.tmp"):
        (tmp_path / name).symlink_to(target)
    write_runtime(AgentInfo("http://127.0.0.1:1", "t", os.getpid(), "m"), path)
    assert target.read_text() == "precious"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and not path.is_symlink()
    assert read_runtime_file(path) == AgentInfo("http://127.0.0.1:1", "t", os.getpid(), "m")


def test_load_validates_first_and_unload_fails_running_streams_honestly(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    running = launch(tmp_path, model=str(tiny_checkpoint))
    try:
        assert running.wait_ready()["status"] == "ready"
        not_a_model = tmp_path / "empty-dir"
        not_a_model.mkdir()
        reply = running.http.post("/v1/load", json={"model": str(not_a_model)})
        assert reply.status_code == 400 and "config.json" in reply.json()["error"]["message"]
        reply = running.http.post("/v1/load", json={"model": "facebook/galactica-125m"})
        assert reply.status_code == 400
        assert reply.json()["error"]["message"].startswith("the Hugging Face hub is unreachable")
        assert "GALACTICA_MODEL=" in reply.json()["error"]["message"]
        health = running.http.get("/health").json()
        assert health["status"] == "ready" and health["serving"] == str(tiny_checkpoint)
        # a load that fails in the background leaves the old model serving, and says so
        no_weights = tmp_path / "no-weights"
        no_weights.mkdir()
        (no_weights / "config.json").write_text("{}")
        assert running.http.post("/v1/load", json={"model": str(no_weights)}).status_code == 202
        health = running.wait_ready()
        assert health["status"] == "failed" and health["model"] == str(no_weights)
        assert health["serving"] == str(tiny_checkpoint) and "still serving" in health["error"]
        assert running.complete(prompt="x", max_tokens=2).status_code == 200
        # a good load: every request meanwhile is answered, by the old model or the new one
        other = build_random_checkpoint(tmp_path / "other", "tiny", seed=1)
        assert running.http.post("/v1/load", json={"model": str(other)}).status_code == 202
        deadline = time.monotonic() + 120
        while running.http.get("/health").json()["serving"] != str(other):
            assert running.complete(prompt="x", max_tokens=2).status_code == 200
            assert time.monotonic() < deadline, running.http.get("/health").json()
        assert running.complete(prompt="x", max_tokens=2).json()["model"] == str(other)
        # a whole request and a stream are running when the model is unloaded
        long = {"prompt": "Long", "max_tokens": 2000, "ignore_eos": True, "n": 16}
        whole: list[httpx.Response] = []
        waiter = threading.Thread(target=lambda: whole.append(running.complete(**long)))
        with running.http.stream(
            "POST", "/v1/completions", json={**long, "stream": True}
        ) as stream:
            lines = stream.iter_lines()
            seen = [next(line for line in lines if line.startswith("data: "))]
            waiter.start()
            deadline = time.monotonic() + 60
            while True:  # both requests are in the engine: the second running or waiting
                queue = running.http.get("/health").json()["queue"]
                if queue["waiting"] or queue["running"] > 16:
                    break
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert running.http.post("/v1/unload").status_code == 200
            seen += [line for line in lines if line.startswith("data: ")]
        waiter.join(timeout=60)
        assert seen[-1] == "data: [DONE]"
        error = json.loads(seen[-2][6:])["error"]
        assert "unloaded" in error["message"] and error["type"] == "server_error"
        assert whole[0].status_code == 500 and "unloaded" in whole[0].json()["error"]["message"]
        health = running.http.get("/health").json()
        assert health["status"] == "empty" and health["queue"] == {"running": 0, "waiting": 0}
        assert running.complete(prompt="x").status_code == 503
    finally:
        running.stop()


def test_hub_unreachable_is_said_in_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import snapshot_download

    from galactica_ext.agent.host import HUB_UNREACHABLE, hub_unreachable

    with pytest.raises(Exception) as caught:  # what the hub raises with no network
        snapshot_download("facebook/galactica-125m", local_files_only=True, cache_dir=tmp_path)
    assert hub_unreachable(caught.value) and not hub_unreachable(ValueError("x"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    running = launch(tmp_path, model="125m")
    try:
        health = running.wait_ready()
        assert health["status"] == "failed" and health["error"] == HUB_UNREACHABLE
    finally:
        running.stop()


CHOICES = [" Attention is all you need, Vaswani", " Deep residual learning, He", " BERT, Devlin"]


def test_choice_constraint_and_decoding_modes_through_the_api(agent: Agent) -> None:
    one = agent.complete(
        prompt="Attention [START_REF]",
        max_tokens=40,
        structured_outputs={"choice": CHOICES},
        stop_token_ids=[5],
    ).json()["choices"]
    assert len(one) == 1 and one[0]["text"] in CHOICES and one[0]["finish_reason"] == "stop"
    ranked = agent.complete(
        prompt="Attention [START_REF]", max_tokens=40, guided_choice=CHOICES, n=3,
        use_beam_search=True,
    ).json()["choices"]  # fmt: skip
    assert sorted(c["text"] for c in ranked) == sorted(CHOICES)
    groups = agent.complete(
        prompt="Attention [START_REF]", max_tokens=6, n=4, use_beam_search=True,
        num_beam_groups=2, diversity_penalty=1.0,
    )  # fmt: skip
    assert groups.status_code == 200 and len(groups.json()["choices"]) == 4
    contrastive = {"prompt": "Attention", "max_tokens": 6, "top_k": 4, "penalty_alpha": 0.6}
    one = agent.complete(**contrastive, temperature=0, ignore_eos=True)
    assert one.status_code == 200 and one.json()["usage"]["completion_tokens"] == 6
    two = agent.complete(**contrastive, temperature=0, n=2)
    assert two.status_code == 400 and two.json()["error"]["param"] == "penalty_alpha"
    bad = agent.complete(prompt="x", n=4, use_beam_search=True, num_beam_groups=3)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "num_beam_groups"
