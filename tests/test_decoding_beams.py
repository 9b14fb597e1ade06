"""Beam search in the engine's own loop (issue 8.6): the same results as transformers' beam
search, constraints honoured, and a short request never waits for a long search."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch

from galactica_ext.engine import Engine, EngineClosed, GalacticaModel, SamplingParams

EOS, END_REF = 2, 5


@pytest.fixture
def engine(tiny_model: GalacticaModel) -> Engine:
    return tiny_model.engine


def transformers_beams(
    engine: Engine, prompt: str, beams: int, max_tokens: int, ends: list[int], **options: Any
) -> list[list[int]]:
    """``model.generate`` beam search: each returned sequence's generated tokens, up to and
    including its end token (padding after it removed)."""
    ids = torch.tensor([engine.encode(prompt)])
    out = engine.model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=max_tokens,
        num_beams=beams,
        num_return_sequences=beams,
        do_sample=False,
        early_stopping=True,
        length_penalty=1.0,
        eos_token_id=ends,
        pad_token_id=1,
        **options,
    )
    rows = []
    for row in out[:, ids.shape[1] :].tolist():
        cut = next((i for i, t in enumerate(row) if t in ends), None)
        rows.append(row if cut is None else row[: cut + 1])
    return rows


CASES = [
    ("Hello", 3, {}, {}),
    ("The Transformer architecture [START_REF]", 4, {"min_tokens": 3}, {"min_new_tokens": 3}),
    (
        "Proteins fold into",
        2,
        {"logit_bias": {END_REF: 6.0, EOS: 5.0}},
        {"sequence_bias": {(END_REF,): 6.0, (EOS,): 5.0}},
    ),
    (
        "x y z",
        5,
        {"stop_token_ids": [END_REF], "logit_bias": {END_REF: 7.0}},
        {"sequence_bias": {(END_REF,): 7.0}},
    ),
]


@pytest.mark.parametrize(("prompt", "beams", "ours", "theirs"), CASES)
def test_beam_search_matches_transformers(
    engine: Engine, prompt: str, beams: int, ours: dict, theirs: dict
) -> None:
    params = SamplingParams(max_tokens=10, **ours)
    got = [r.token_ids for r in engine.generate(prompt, params, n=beams, num_beams=beams)]
    ends = [EOS, *ours.get("stop_token_ids", [])]
    assert got == transformers_beams(engine, prompt, beams, 10, ends, **theirs)


def test_beam_search_with_a_constraint_matches_transformers(engine: Engine) -> None:
    words = [" alpha", " beta", " gamma", " delta", ".", " epsilon"]
    allowed = [engine.tokenizer.encode(w, add_special_tokens=False)[0] for w in words]

    def only(batch_id: int, ids: torch.Tensor) -> list[int]:
        return allowed

    params = SamplingParams(max_tokens=6, prefix_allowed_tokens_fn=only, logprobs=0)
    results = engine.generate("Greek letters:", params, n=3, num_beams=3)
    reference = transformers_beams(
        engine, "Greek letters:", 3, 6, [EOS], prefix_allowed_tokens_fn=only
    )
    assert [r.token_ids for r in results] == reference
    for result in results:
        assert set(result.token_ids) <= set(allowed)
        assert len(result.logprobs) == len(result.token_ids)
    # ranked by summed log-probability (all the same length here)
    sums = [sum(c.logprob for c in r.logprobs) for r in results]
    assert sums == sorted(sums, reverse=True)


def test_beam_search_ends_at_a_stop_string(engine: Engine) -> None:
    script = engine.tokenizer.encode(" hello world. Next", add_special_tokens=False)
    prompt_len = len(engine.encode("Say"))

    def forcing(batch_id: int, ids: torch.Tensor) -> list[int]:
        step = len(ids) - prompt_len
        return [script[step]] if step < len(script) else []

    params = SamplingParams(max_tokens=10, stop=["lo wor"], prefix_allowed_tokens_fn=forcing)
    results = engine.generate("Say", params, n=2, num_beams=2)
    for result in results:
        assert (result.text, result.finish_reason) == (" hel", "stop")
        assert result.token_ids == script[:3]


def test_a_short_request_finishes_during_a_long_beam_search(engine: Engine) -> None:
    """Counted in steps, not seconds: the short request is submitted from inside the search
    (on the worker) at its 3rd step and finishes a few search steps later."""
    prompt = "A long citation search"
    prompt_len = len(engine.encode(prompt))
    progress = [0]
    short: list[Any] = []
    seen_by_short: list[int] = []
    submitted = threading.Event()

    def beam_hook(batch_id: int, ids: torch.Tensor) -> list[int]:
        progress[0] = max(progress[0], len(ids) - prompt_len)
        if progress[0] == 3 and not short:
            quick = SamplingParams(
                max_tokens=4, ignore_eos=True, prefix_allowed_tokens_fn=short_hook
            )
            short.append(engine.submit("Quick", quick))
            submitted.set()
        return []

    def short_hook(batch_id: int, ids: torch.Tensor) -> list[int]:
        seen_by_short.append(progress[0])
        return []

    params = SamplingParams(
        max_tokens=300, min_tokens=300, ignore_eos=True, prefix_allowed_tokens_fn=beam_hook
    )
    search = engine.submit(prompt, params, n=4, num_beams=8)
    assert submitted.wait(timeout=60)
    (quick,) = short[0].wait()
    assert quick.finish_reason == "length" and len(quick.token_ids) == 4
    assert not search.done.is_set()  # the search is still going
    assert seen_by_short[-1] <= 3 + 3  # it advanced at most 3 steps meanwhile
    search.cancel()
    results = search.wait()
    assert [r.finish_reason for r in results] == ["cancelled"] * 4
    assert all(len(r.token_ids) < 300 for r in results)


def test_cancel_all_cancels_running_searches_sequences_and_the_queue(
    tiny_model: GalacticaModel,
) -> None:
    own = Engine(tiny_model.loaded, max_batch=2, prefix_cache_bytes=0)
    try:
        reached = threading.Event()

        def hook(batch_id: int, ids: torch.Tensor) -> list[int]:
            reached.set()
            return []

        long = SamplingParams(max_tokens=400, ignore_eos=True, prefix_allowed_tokens_fn=hook)
        beams = own.submit("Beams", long, n=2, num_beams=3)
        greedy = own.submit("Greedy", SamplingParams(max_tokens=400, ignore_eos=True))
        queued = own.submit("Queued", SamplingParams(max_tokens=400, ignore_eos=True))
        assert reached.wait(timeout=60)
        own.cancel_all()
        for completion in (beams, greedy, queued):
            assert completion.done.is_set()
            assert {r.finish_reason for r in completion.wait()} == {"cancelled"}
        assert own.load == {"running": 0, "waiting": 0}
        assert own.generate("After", SamplingParams(max_tokens=2))[0].token_ids
    finally:
        own.close()


def test_close_during_a_beam_search_fails_it_at_the_next_step(tiny_model: GalacticaModel) -> None:
    own = Engine(tiny_model.loaded, prefix_cache_bytes=0)
    steps: list[int] = []
    reached, released = threading.Event(), threading.Event()
    prompt_len = len(own.encode("Unload me"))

    def hook(batch_id: int, ids: torch.Tensor) -> list[int]:
        steps.append(len(ids) - prompt_len)
        if len(ids) - prompt_len == 2:  # hold the search here until the engine is closing
            reached.set()
            released.wait(timeout=60)
        return []

    params = SamplingParams(max_tokens=500, ignore_eos=True, prefix_allowed_tokens_fn=hook)
    search = own.submit("Unload me", params, n=2, num_beams=2)
    assert reached.wait(timeout=60)
    closer = threading.Thread(target=own.close)
    closer.start()
    while not own._closed:
        threading.Event().wait(0.001)
    released.set()
    closer.join(timeout=60)
    assert not closer.is_alive()
    with pytest.raises(EngineClosed):
        search.wait()
    assert max(steps) == 2  # the step in progress finished; no other began


def test_a_search_is_not_starved_by_a_busy_batch(engine: Engine) -> None:
    """While the continuous batch is busy the searches get a share of the worker: a short
    beam search finishes long before a long free request beside it."""
    long = engine.submit("Free running", SamplingParams(max_tokens=1500, ignore_eos=True))
    results = engine.generate(
        "A short search", SamplingParams(max_tokens=8, ignore_eos=True), n=2, num_beams=4
    )
    assert [len(r.token_ids) for r in results] == [8, 8]
    assert not long.done.is_set()
    long.cancel()
    assert long.wait()[0].finish_reason == "cancelled"


def test_a_cheap_search_does_not_starve_a_costly_one(engine: Engine) -> None:
    """Searches take their turns: a 16-beam search finishes beside a 2-beam one and a busy
    batch."""
    long = engine.submit("Free running", SamplingParams(max_tokens=1500, ignore_eos=True))
    few = engine.submit("Cheap", SamplingParams(max_tokens=6, ignore_eos=True), n=2, num_beams=2)
    many = engine.submit("Costly", SamplingParams(max_tokens=6, ignore_eos=True), n=2, num_beams=16)
    assert [len(r.token_ids) for r in many.wait()] == [6, 6]
    assert [len(r.token_ids) for r in few.wait()] == [6, 6]
    assert not long.done.is_set()
    long.cancel()
    long.wait()


@pytest.mark.parametrize("ignore_eos", [False, True])
def test_the_batch_and_beams_end_sequences_by_one_rule(engine: Engine, ignore_eos: bool) -> None:
    """One rule for both paths (``Request.ends``): ``min_tokens`` holds back the end of
    document only while it would end the sequence; with ``ignore_eos`` it is an ordinary
    token, taken at once (as vLLM), and the sequence runs to ``max_tokens``."""
    params = SamplingParams(
        max_tokens=4, min_tokens=2, logit_bias={EOS: 100.0}, ignore_eos=ignore_eos
    )
    batch = engine.generate("Stop here", params)[0]
    beams = engine.generate("Stop here", params, num_beams=2)[0]
    for result in (batch, beams):
        if ignore_eos:
            assert result.token_ids == [EOS] * 4 and result.finish_reason == "length"
        else:  # two tokens that are not the end, then the end
            assert EOS not in result.token_ids[:2] and result.token_ids[2:] == [EOS]
            assert result.finish_reason == "stop"
    assert (batch.prompt_tokens, batch.truncated) == (beams.prompt_tokens, beams.truncated)
