"""A numerical failure or a raising constraint fails its own sequence only: the others in the
same continuous batch go on and finish with all their tokens (issue 8.1)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch

from galactica_ext.engine import (
    Delta,
    Engine,
    EngineClosed,
    Failed,
    Finished,
    GalacticaModel,
    SamplingError,
    SamplingParams,
)
from galactica_ext.engine.sampling import choose


@pytest.fixture
def engine(tiny_model: GalacticaModel) -> Engine:
    return tiny_model.engine


class Hold:
    """A constraint that holds the worker at the ``after``-th generated token until released,
    so that requests submitted meanwhile join the running batch."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.reached = threading.Event()
        self.released = threading.Event()
        self.prompt_len: int | None = None

    def __call__(self, batch_id: int, ids: torch.Tensor) -> list[int]:
        if self.prompt_len is None:
            self.prompt_len = len(ids)
        if len(ids) - self.prompt_len == self.after and not self.released.is_set():
            self.reached.set()
            self.released.wait(timeout=60)
        return []


def closing(engine: Engine) -> None:
    """Wait until ``close`` has marked the engine closed (the worker is held meanwhile)."""
    while not engine._closed:
        threading.Event().wait(0.001)


def collect(completion: Any) -> tuple[list[Any], BaseException | None]:
    events: list[Any] = []
    try:
        for event in completion:
            events.append(event)
    except Exception as err:  # the stream ends with the failure
        return events, err
    return events, None


def test_a_tiny_temperature_fails_in_the_sampler_with_a_clear_message() -> None:
    logits = torch.randn(50_000, generator=torch.Generator().manual_seed(0)) * 10
    params = SamplingParams(temperature=3e-39)
    with pytest.raises(SamplingError, match=r"temperature=3e-39.*temperature 0"):
        choose(logits, params, torch.Generator().manual_seed(0), None, 0, [2])
    nan = logits.clone()
    nan[7] = float("nan")
    with pytest.raises(SamplingError, match="NaN logits"):
        choose(nan, SamplingParams(), None, None, 0, [2])


def test_a_poisoned_request_leaves_its_batch_neighbour_whole(engine: Engine) -> None:
    healthy = SamplingParams(max_tokens=12, ignore_eos=True, logprobs=0)
    alone = engine.generate("A healthy request", healthy)[0]
    hold = Hold(after=2)
    healthy_held = SamplingParams(max_tokens=12, ignore_eos=True, logprobs=0)
    healthy_held.prefix_allowed_tokens_fn = hold
    running = engine.submit("A healthy request", healthy_held)
    assert hold.reached.wait(timeout=60)
    # below what the agent accepts; the engine takes it and must contain the failure (1e-45:
    # any logit over 4e-7 in size overflows float32, so the probabilities are NaN at once)
    poisoned = engine.submit("A poisoned request", SamplingParams(max_tokens=8, temperature=1e-45))
    hold.released.set()
    events, error = collect(poisoned)
    assert isinstance(error, SamplingError) and "temperature=1e-45" in str(error)
    assert not any(isinstance(e, Finished) for e in events)
    (result,) = running.wait()
    assert result.finish_reason == "length" and result.token_ids == alone.token_ids
    assert engine.generate("Still serving", SamplingParams(max_tokens=3))[0].token_ids


def test_a_failure_mid_stream_fails_only_that_sequence(engine: Engine) -> None:
    """Both requests run in the same decoding steps; one's constraint raises at its 4th token."""
    prompt_len: list[int] = []

    def explodes(batch_id: int, ids: torch.Tensor) -> list[int]:
        if not prompt_len:
            prompt_len.append(len(ids))
        if len(ids) - prompt_len[0] == 3:
            raise RuntimeError("constraint exploded at token 4")
        return []

    alone = engine.generate("The neighbour", SamplingParams(max_tokens=10, ignore_eos=True))[0]
    hold = Hold(after=1)
    first = SamplingParams(max_tokens=10, ignore_eos=True, prefix_allowed_tokens_fn=hold)
    neighbour = engine.submit("The neighbour", first)
    assert hold.reached.wait(timeout=60)
    before = engine.steps
    victim = engine.submit(
        "The victim",
        SamplingParams(max_tokens=10, ignore_eos=True, prefix_allowed_tokens_fn=explodes),
    )
    hold.released.set()
    events, error = collect(victim)
    assert isinstance(error, RuntimeError) and "exploded" in str(error)
    assert [len(e.token_ids) for e in events if isinstance(e, Delta)] == [1, 1, 1]
    (result,) = neighbour.wait()
    assert result.token_ids == alone.token_ids and result.finish_reason == "length"
    assert engine.steps - before < 10 + 3  # they shared steps


def test_a_failed_choice_ends_its_request_with_one_failed_event(engine: Engine) -> None:
    completion = engine.submit(
        "Sample", SamplingParams(max_tokens=4, temperature=1e-45, seed=1), n=3
    )
    completion.done.wait(timeout=60)
    assert isinstance(completion.failed, SamplingError)
    events: list[Any] = []
    while not completion._sync.empty():  # type: ignore[union-attr]
        events.append(completion._sync.get())  # type: ignore[union-attr]
    assert sum(isinstance(e, Failed) for e in events) == 1
    assert not any(isinstance(e, Finished) for e in events)


def test_close_fails_running_and_waiting_requests_promptly(tiny_model: GalacticaModel) -> None:
    own = Engine(tiny_model.loaded, max_batch=1, prefix_cache_bytes=0)
    hold = Hold(after=2)
    running = own.submit(
        "Running", SamplingParams(max_tokens=500, ignore_eos=True, prefix_allowed_tokens_fn=hold)
    )
    assert hold.reached.wait(timeout=60)
    waiting = own.submit("Waiting", SamplingParams(max_tokens=5))
    closer = threading.Thread(target=own.close)
    closer.start()
    closing(own)
    hold.released.set()
    closer.join(timeout=60)
    assert not closer.is_alive()
    for completion in (running, waiting):
        _, error = collect(completion)
        assert isinstance(error, EngineClosed)
    assert len(running.results) == 1 and running.results[0] is None


def test_close_ends_an_async_stream_with_engine_closed(tiny_model: GalacticaModel) -> None:
    import asyncio

    own = Engine(tiny_model.loaded, prefix_cache_bytes=0)
    hold = Hold(after=2)

    async def consume() -> tuple[int, BaseException | None]:
        completion = own.submit(
            "Streaming",
            SamplingParams(max_tokens=500, ignore_eos=True, prefix_allowed_tokens_fn=hold),
            loop=asyncio.get_running_loop(),
        )
        deltas = 0
        try:
            async for event in completion:
                deltas += isinstance(event, Delta)
                if deltas == 2:  # the worker is held at the 3rd token: unload now
                    closer = threading.Thread(target=own.close)
                    closer.start()
                    closing(own)
                    hold.released.set()
        except EngineClosed as err:
            return deltas, err
        return deltas, None

    deltas, error = asyncio.run(consume())
    assert isinstance(error, EngineClosed) and deltas < 10
