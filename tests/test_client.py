"""galactica_ext.client against our agent, a real subprocess on the tiny checkpoint."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from agent_fixtures import (
    FORCE_END_REF,
    RawServer,
    Server,
    isolated_env,
    start_test_agent,
    stop_process,
)
from task_cases import TaskCases, wait_idle

from galactica_ext import client as client_module
from galactica_ext import tasks
from galactica_ext.client import (
    STREAM_CUT,
    AgentUnavailable,
    AsyncCompletionsClient,
    CompletionError,
    CompletionsClient,
    StreamCut,
    arun_task,
    connect,
    locate,
    request_payload,
    run_task,
)


class TestTasksOnTheAgent(TaskCases):
    @pytest.fixture
    def server(self, agent_server: Server) -> Server:
        return agent_server


# ------------------------------------------------------------------------------ payload


def test_payload_of_a_citation_request_works_on_vllm_too() -> None:
    request = tasks.cite("The Transformer", n=4)
    payload = request_payload(request, "facebook/galactica-1.3b")
    assert payload["model"] == "facebook/galactica-1.3b"
    assert payload["prompt"] == request.prompt and payload["prompt"].endswith(tasks.START_REF)
    assert payload["skip_special_tokens"] is False
    assert payload["stop"] == [tasks.END_REF] and payload["stop_token_ids"] == [tasks.END_REF_ID]
    assert payload["use_beam_search"] is True and payload["n"] == 4
    assert payload["truncate_prompt_tokens"] == request.truncate_prompt_tokens == 2048 - 64
    assert "top_k" not in payload and "seed" not in payload and "min_tokens" not in payload
    diverse = request_payload(tasks.cite("x", n=16, diverse=True))
    assert diverse["n"] == 16 and diverse["num_beam_groups"] == 16  # never n=32 (issue 9)
    assert diverse["diversity_penalty"] == tasks.DIVERSITY_PENALTY


def test_payload_of_a_sampled_completion() -> None:
    request = tasks.complete("Once", temperature=0.8, top_p=0.9, top_k=40, seed=7, max_tokens=5)
    payload = request_payload(request)
    assert "model" not in payload and "use_beam_search" not in payload
    assert payload["top_k"] == 40 and payload["seed"] == 7 and payload["temperature"] == 0.8
    assert payload["n"] == 1 and payload["max_tokens"] == 5 and payload["stop"] == ["\n\n"]


def test_payload_sends_decoding_extras_only_when_set() -> None:
    """vLLM rejects fields it does not know: the extras go only when they differ from the
    defaults, and through the OpenAI library's extra_body."""
    from galactica_ext.client.core import openai_arguments

    request = tasks.complete("x", max_tokens=3)
    extras = {"num_beam_groups", "diversity_penalty", "penalty_alpha", "structured_outputs"}
    assert not extras & set(request_payload(request))
    request.choices, request.penalty_alpha, request.top_k = [" A, B", " C, D"], 0.6, 4
    payload = request_payload(request)
    assert payload["structured_outputs"] == {"choice": [" A, B", " C, D"]}
    assert payload["penalty_alpha"] == 0.6 and payload["top_k"] == 4
    args = openai_arguments(payload)
    assert args["extra_body"]["structured_outputs"] == payload["structured_outputs"]
    assert "top_k" in args["extra_body"] and "prompt" in args and "prompt" not in args["extra_body"]


# ------------------------------------------------------------------------ agent specifics


def test_health_of_our_agent(agent_server: Server) -> None:
    with agent_server.client() as client:
        health = client.health()
    assert health["status"] == "ready" and health["device"] == "cpu"
    assert health["dtype"] == "float32" and health["memory_bytes"] > 0
    # the queue is shared with other tests' work: its shape, not its numbers
    assert set(health["queue"]) == {"running", "waiting"}
    assert health["pid"] == agent_server.proc.pid


def test_stream_reports_chunks_usage_and_done(agent_server: Server) -> None:
    client = agent_server.client()
    with client.stream(prompt="Protein", max_tokens=4, temperature=0, ignore_eos=True) as stream:
        chunks = list(stream)
    assert stream.done and stream.closed
    texts = [c["choices"][0]["text"] for c in chunks if c["choices"] and c["choices"][0]["text"]]
    assert len(texts) == 4  # one chunk per token
    assert stream.finish_reasons == {0: "length"}
    whole = client.complete(prompt="Protein", max_tokens=4, temperature=0, ignore_eos=True)
    assert stream.outputs == [whole["choices"][0]["text"]]
    assert stream.usage == whole["usage"] and whole["usage"]["completion_tokens"] == 4


def test_n_sampled_choices_stream_side_by_side(agent_server: Server) -> None:
    client = agent_server.client()
    stream = client.stream(
        prompt="Protein", max_tokens=3, temperature=1.0, n=3, seed=4, ignore_eos=True
    )
    list(stream)
    assert sorted(stream.texts) == [0, 1, 2]
    assert stream.usage["completion_tokens"] == 9


def test_interrupting_run_task_cancels_on_the_agent(agent_server: Server) -> None:
    client = agent_server.client()

    def interrupt(text: str) -> None:
        if len(text) > 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_task(client, "complete", "Long", interrupt, max_tokens=2000, extra={"ignore_eos": True})
    assert wait_idle(client) == {"running": 0, "waiting": 0}


def test_unreachable_server_is_one_sentence(closed_url: str) -> None:
    with CompletionsClient(closed_url) as client, pytest.raises(AgentUnavailable) as err:
        run_task(client, "ask", "Why?")
    message = str(err.value)
    assert message.startswith(f"No GALACTICA agent answers at {closed_url}")
    assert "galactica-ext agent" in message and "GALACTICA_URL" in message
    assert message.count(". ") == 0 and message.endswith(".") and "\n" not in message
    assert err.value._render_traceback_() == [f"AgentUnavailable: {message}"]


def test_locate_and_connect_take_url_then_config_then_runtime_file(
    agent_server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    isolated_env(monkeypatch, tmp_path)
    assert locate() is None
    with pytest.raises(AgentUnavailable, match="No GALACTICA agent is running"):
        connect(start=False)
    # the runtime file of a running agent
    monkeypatch.setenv("GALACTICA_RUNTIME_FILE", str(agent_server.runtime))
    assert locate() == (agent_server.url, agent_server.token)
    assert connect(start=False).health()["status"] == "ready"
    # the server extension's remote_url in Jupyter's config beats the runtime file
    config = Path(tmp_path / "jupyter-config" / "jupyter_server_config.json")
    config.write_text(
        json.dumps(
            {"Galactica": {"remote_url": agent_server.url + "/v1", "remote_api_key": "from-config"}}
        )
    )
    assert locate() == (agent_server.url + "/v1", "from-config")
    config.unlink()
    drop_in = tmp_path / "jupyter-config" / "jupyter_server_config.d"
    drop_in.mkdir()
    (drop_in / "galactica.json").write_text(
        json.dumps(
            {"Galactica": {"remote_url": agent_server.url, "remote_api_key": agent_server.token}}
        )
    )
    assert connect(start=False).health()["model"] == agent_server.model
    # $GALACTICA_URL (with /v1 or not) and $GALACTICA_API_KEY beat both
    monkeypatch.setenv("GALACTICA_URL", agent_server.url + "/v1/")
    monkeypatch.setenv("GALACTICA_API_KEY", agent_server.token)
    client = connect()
    assert client.url == agent_server.url and client.token == agent_server.token
    assert run_task(client, "cite", "Attention", n=1, top_p=0.9, extra=FORCE_END_REF)["suggestions"]
    monkeypatch.setenv("GALACTICA_API_KEY", "wrong")
    with pytest.raises(CompletionError) as refused:
        connect().complete(prompt="x", max_tokens=1, model=agent_server.model)
    assert refused.value.status == 401


def test_connect_starts_one_agent_for_everyone_and_it_loads_models(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two kernels connecting at once start one agent; then the model lifecycle over HTTP."""
    isolated_env(monkeypatch, tmp_path)
    runtime = tmp_path / "runtime" / "galactica-agent.json"
    monkeypatch.setenv("GALACTICA_RUNTIME_FILE", str(runtime))
    before = len(client_module.started_agents)
    clients: list[CompletionsClient] = []

    def kernel() -> None:
        clients.append(connect(model=str(tiny_checkpoint), dtype="float32", device="cpu"))

    threads = [threading.Thread(target=kernel) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    started = client_module.started_agents[before:]
    try:
        assert len(started) == 1 and len(clients) == 2
        assert clients[0].url == clients[1].url and clients[0].token == clients[1].token
        client = clients[0]
        assert client.wait_ready(timeout=120)["model"] == str(tiny_checkpoint)
        assert connect(start=False).url == client.url  # found through the runtime file
        assert run_task(client, "ask", "Why?", max_tokens=2)["task"] == "ask"

        # unload: nothing to run on, said in one sentence
        assert client.unload()["status"] == "empty"
        with pytest.raises(CompletionError, match="no model loaded"):
            client.wait_ready(timeout=5)
        with pytest.raises(CompletionError) as empty:
            run_task(client, "ask", "Why?", max_tokens=2)
        assert empty.value.status == 503

        # load again, watching the progress
        seen: list[dict] = []
        health = client.load(
            str(tiny_checkpoint), dtype="float32", device="cpu", wait=True, timeout=120,
            on_progress=seen.append,
        )  # fmt: skip
        assert health["status"] == "ready" and health["model"] == str(tiny_checkpoint)
        assert all(h["status"] == "loading" for h in seen)
        assert run_task(client, "ask", "Why?", max_tokens=2)["usage"]["completion_tokens"] <= 2

        # a model that cannot load: the agent's error, in /health and from wait_ready
        broken = tmp_path / "broken"
        broken.mkdir()
        (broken / "config.json").write_text("{}")
        with pytest.raises(CompletionError, match="failed to load"):
            client.load(str(broken), wait=True, timeout=120)
        assert client.health()["status"] == "failed"
    finally:
        for proc in started:
            stop_process(proc)
        for c in clients:
            c.close()
    assert not runtime.exists()


def test_kernel_side_modules_import_no_torch() -> None:
    code = (
        "import sys, galactica_ext.client, galactica_ext.discovery, galactica_ext.magics\n"
        "import galactica_ext.widget\n"
        "from galactica_ext.client import connect, locate\n"
        "locate()\n"
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


# --------------------------------------------------------- streams that end in silence


def test_a_stream_without_done_is_an_error(raw_server: RawServer) -> None:
    """Two chunks, then the connection closes: every client says the stream was cut."""
    with CompletionsClient(raw_server.url) as client:
        stream = client.stream(prompt="x", max_tokens=5)
        got = []
        with pytest.raises(StreamCut) as cut:
            for chunk in stream:
                got.append(chunk)
        assert len(got) == 2 and stream.outputs == [" two chunks"] and not stream.done
        assert str(cut.value) == STREAM_CUT and "crashed or cut the connection" in STREAM_CUT
        with pytest.raises(StreamCut):
            run_task(client, "complete", "x", max_tokens=5)

    async def async_client() -> None:
        async with AsyncCompletionsClient(raw_server.url) as client:
            with pytest.raises(StreamCut):
                async with client.stream(prompt="x", max_tokens=5) as stream:
                    async for _chunk in stream:
                        pass
            with pytest.raises(StreamCut):
                await arun_task(client, "complete", "x", max_tokens=5)

    asyncio.run(async_client())
    assert len(raw_server.requests) == 4


def test_an_error_event_mid_stream_is_an_error(raw_server: RawServer) -> None:
    raw_server.mode = "error"
    with CompletionsClient(raw_server.url) as client, pytest.raises(CompletionError) as err:
        run_task(client, "complete", "x", max_tokens=5)
    assert not isinstance(err.value, StreamCut)
    assert err.value.message == "the sampler failed on this sequence" and err.value.status == 500

    async def async_client() -> None:
        async with AsyncCompletionsClient(raw_server.url) as client:
            with pytest.raises(CompletionError, match="the sampler failed"):
                await arun_task(client, "complete", "x", max_tokens=5)

    asyncio.run(async_client())


def test_an_agent_killed_mid_stream_is_an_error(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The real agent dies (kill -9) while it streams: the client raises, never a short
    result that looks finished."""
    server = start_test_agent(
        str(tiny_checkpoint), tmp_path / "agent.json", tmp_path / "agent.log",
        dtype="float32", device="cpu",
    )  # fmt: skip
    try:
        client = server.client()
        stream = client.stream(prompt="Long", max_tokens=2000, ignore_eos=True)
        with pytest.raises(StreamCut, match="the stream ended before the model finished"):
            for _chunk in stream:
                if server.proc.poll() is None:
                    os.kill(server.proc.pid, signal.SIGKILL)
        assert not stream.done
    finally:
        server.stop()


@pytest.mark.parametrize(
    "request_",
    [
        tasks.cite("The Transformer", n=16, diverse=True),
        tasks.cite("The Transformer", n=16),
        tasks.equation("the energy of a photon"),
        tasks.summarise("A cell about proteins."),
        tasks.complete("Once", temperature=0.7, top_p=0.9, top_k=40, seed=1),
        tasks.build("ask", "Why?"),
        tasks.build("work", "What is six times seven?"),
    ],
    ids=lambda r: r.task,
)
def test_every_payload_is_a_request_the_protocol_accepts(request_: tasks.GenerationRequest) -> None:
    """What the client sends is what the agent's schema (galactica_ext.protocol) accepts:
    one rule, written once (issue 9: a diverse cite once asked for n=32)."""
    from galactica_ext.protocol import MAX_N, parse_completion

    parsed = parse_completion(prepare_for_wire(request_payload(request_, "m")))
    assert parsed.n <= MAX_N and parsed.max_tokens == request_.max_tokens


def prepare_for_wire(payload: dict) -> dict:
    from galactica_ext.client.core import prepare

    return prepare(payload, stream=not payload.get("use_beam_search"))
