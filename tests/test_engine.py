"""The engine on a real random-weight model: loading, decoding, stops, streaming, cancellation,
continuous batching, prefix reuse, truncation, bad input, and every task end to end.

Random weights say nothing useful, so tests that need particular tokens force them, with
``logit_bias`` or a ``prefix_allowed_tokens_fn`` that allows one scripted token per step.
Greedy results are checked against a reference that recomputes the whole sequence without
any cache, token by token (ids and log-probabilities).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

import galactica_ext
from galactica_ext import tasks
from galactica_ext.engine import (
    Delta,
    Engine,
    Finished,
    GalacticaModel,
    LoadOptions,
    PromptTooLong,
    QueueFull,
    SamplingParams,
    pick_device,
    pick_dtype,
)
from galactica_ext.specs import valid_names

END_REF = 5
EOS = 2

# ---- helpers ------------------------------------------------------------------------------


@pytest.fixture
def engine(tiny_model: GalacticaModel) -> Engine:
    return tiny_model.engine


def reference(model: Any, ids: list[int], steps: int) -> list[tuple[int, float]]:
    """Greedy (token, log-probability) pairs, recomputing the whole sequence at every step."""
    ids, out = list(ids), []
    with torch.inference_mode():
        for _ in range(steps):
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1].float()
            logprobs = torch.log_softmax(logits, dim=-1)
            token = int(torch.argmax(logprobs))
            out.append((token, float(logprobs[token])))
            ids.append(token)
            if token == EOS:
                break
    return out


def assert_same_greedy(result: Any, expected: list[tuple[int, float]]) -> None:
    assert result.token_ids == [t for t, _ in expected]
    got = [c.logprob for c in result.logprobs]
    assert got == pytest.approx([lp for _, lp in expected], abs=1e-4)


def forcing(script: Sequence[int], seen: list[list[int]] | None = None) -> Callable:
    """A constraint that allows exactly ``script[i]`` as the i-th generated token (and anything
    after the script). ``seen`` receives the prompt ids the engine actually used."""
    prompt_len: list[int] = []

    def allowed(batch_id: int, ids: torch.Tensor) -> list[int]:
        if not prompt_len:  # the first call sees the prompt alone
            prompt_len.append(len(ids))
            if seen is not None:
                seen.append(ids.tolist())
        step = len(ids) - prompt_len[0]
        return [script[step]] if step < len(script) else []

    return allowed


class Gate:
    """Holds the engine's worker inside a decoding step (from ``after`` generated tokens on)
    until opened, so that requests submitted meanwhile join the running batch together."""

    def __init__(self, after: int = 2) -> None:
        self.after = after
        self.entered = threading.Event()
        self.opened = threading.Event()
        self._prompt_len: int | None = None

    def __call__(self, batch_id: int, ids: torch.Tensor) -> list[int]:
        if self._prompt_len is None:
            self._prompt_len = len(ids)
        if len(ids) - self._prompt_len >= self.after and not self.opened.is_set():
            self.entered.set()
            self.opened.wait(timeout=60)
        return []

    def hold(self) -> None:
        assert self.entered.wait(timeout=60), "the engine never reached the gate"

    def open(self) -> None:
        self.opened.set()


def ids_of(engine: Engine, text: str) -> list[int]:
    return engine.tokenizer.encode(text, add_special_tokens=False)


def events_of(completion: Any) -> tuple[list[Delta], list[Any]]:
    deltas, finished = [], []
    for event in completion:
        (deltas if isinstance(event, Delta) else finished).append(event)
    return deltas, [f.result for f in finished]


# ---- loading ------------------------------------------------------------------------------


def test_loaded_model(tiny_model: GalacticaModel, tiny_checkpoint: Path) -> None:
    info = tiny_model.loaded.describe()
    assert info["model"] == str(tiny_checkpoint.resolve())
    assert (info["device"], info["dtype"]) == ("cpu", "float32")
    assert info["parameters"] > 50_000 * 64
    tok = tiny_model.loaded.tokenizer
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.padding_side == "left"
    config = tiny_model.loaded.model.generation_config
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (1, 0, 2)


def test_bfloat16_load_with_progress(tiny_checkpoint: Path) -> None:
    seen: list[tuple[str, float]] = []
    model = galactica_ext.load_model(
        str(tiny_checkpoint),
        dtype="bfloat16",
        device="cpu",
        progress=lambda p, f: seen.append((p, f)),
    )
    try:
        assert model.loaded.dtype == torch.bfloat16
        assert next(model.loaded.model.parameters()).dtype == torch.bfloat16
        assert seen[0] == ("load", 0.0) and seen[-1] == ("load", 1.0)
        fractions = [f for _, f in seen]
        assert fractions == sorted(fractions)
        result = model.engine.generate("Hello", SamplingParams(max_tokens=3, ignore_eos=True))[0]
        assert len(result.token_ids) == 3 and result.finish_reason == "length"
    finally:
        model.close()


def test_unknown_size_alias_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError) as err:
        GalacticaModel.load("galactica-3b", device="cpu")
    for name in valid_names():
        assert name in str(err.value)


def test_missing_local_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        GalacticaModel.load(str(missing), device="cpu")


def test_a_directory_without_a_model_is_named(tmp_path: Path) -> None:
    with pytest.raises((OSError, ValueError), match=re.escape(str(tmp_path))):
        GalacticaModel.load(str(tmp_path), device="cpu")


@pytest.mark.parametrize(
    ("option", "value"), [("dtype", "float8"), ("device", "tpu"), ("quantize", "2bit")]
)
def test_bad_load_options(option: str, value: str) -> None:
    with pytest.raises(ValueError, match=option):
        LoadOptions(**{option: value}).validate()


def test_device_and_dtype_choice() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_dtype("float16", torch.device("cpu")) == torch.float16
    assert pick_dtype("auto", torch.device("cpu")) in (torch.float32, torch.bfloat16)


# ---- decoding -----------------------------------------------------------------------------


def test_greedy_matches_a_full_recompute(engine: Engine) -> None:
    prompt = "Proteins fold into three dimensional structures because of"
    expected = reference(engine.model, engine.encode(prompt), 12)
    result = engine.generate(prompt, SamplingParams(max_tokens=12, logprobs=0))[0]
    assert_same_greedy(result, expected)
    assert result.prompt_tokens == len(engine.encode(prompt)) and not result.truncated


def test_greedy_is_deterministic(engine: Engine) -> None:
    params = SamplingParams(max_tokens=10, logprobs=2)
    first, second = (engine.generate("The Transformer", params)[0] for _ in range(2))
    assert first.token_ids == second.token_ids and first.text == second.text
    for a, b in zip(first.logprobs, second.logprobs, strict=True):
        assert dict(a.top_logprobs) == pytest.approx(dict(b.top_logprobs), abs=1e-4)


def test_seeds_reproduce_samples(engine: Engine) -> None:
    params = dict(max_tokens=8, temperature=5.0, seed=1234, ignore_eos=True)
    first = engine.generate("A sample", SamplingParams(**params), n=3)
    again = engine.generate("A sample", SamplingParams(**params), n=3)
    assert [r.token_ids for r in first] == [r.token_ids for r in again]
    assert len({tuple(r.token_ids) for r in first}) > 1  # each choice has its own stream
    other = engine.generate("A sample", SamplingParams(**{**params, "seed": 99}))[0]
    assert other.token_ids != first[0].token_ids


def test_sampling_that_can_only_pick_the_top_token_is_greedy(engine: Engine) -> None:
    greedy = engine.generate("Graphene", SamplingParams(max_tokens=6))[0].token_ids
    for options in ({"top_k": 1}, {"top_p": 1e-6}):
        params = SamplingParams(max_tokens=6, temperature=1.0, seed=5, **options)
        assert engine.generate("Graphene", params)[0].token_ids == greedy


def test_choices_of_one_prompt_see_the_same_first_distribution(engine: Engine) -> None:
    """The n choices share the prompt's logits: a logit bias must apply once to each."""
    params = SamplingParams(
        max_tokens=1, temperature=1.0, seed=3, logprobs=3, logit_bias={END_REF: 3}
    )
    results = engine.generate("Hello there", params, n=3)
    tops = [dict(r.logprobs[0].top_logprobs) for r in results]
    assert tops[1] == pytest.approx(tops[0], abs=1e-5) and tops[2] == pytest.approx(
        tops[0], abs=1e-5
    )


def test_logit_bias_forces_end_ref_after_min_tokens(engine: Engine) -> None:
    params = SamplingParams(
        max_tokens=20,
        min_tokens=3,
        logit_bias={END_REF: 100},
        stop=["[END_REF]"],
        stop_token_ids=[END_REF],
    )
    result = engine.generate("The Transformer architecture [START_REF]", params)[0]
    assert len(result.token_ids) == 4 and result.token_ids[-1] == END_REF
    assert END_REF not in result.token_ids[:3]
    assert result.finish_reason == "stop"
    assert "[END_REF]" not in result.text
    assert result.text == engine.tokenizer.decode(result.token_ids[:3])


def test_end_of_document_stops(engine: Engine) -> None:
    result = engine.generate("Hello", SamplingParams(max_tokens=5, logit_bias={EOS: 100}))[0]
    assert (result.token_ids, result.text, result.finish_reason) == ([EOS], "", "stop")
    kept = engine.generate(
        "Hello", SamplingParams(max_tokens=3, logit_bias={EOS: 100}, ignore_eos=True)
    )[0]
    assert kept.token_ids == [EOS] * 3 and kept.finish_reason == "length"


def test_constraint_allows_only_its_tokens(engine: Engine) -> None:
    allowed = [ids_of(engine, w)[0] for w in (" alpha", " beta", " gamma", " delta", ".")]

    def only(batch_id: int, ids: torch.Tensor) -> list[int]:
        return allowed

    sampled = engine.generate(
        "Greek letters:",
        SamplingParams(max_tokens=12, temperature=1.0, seed=0, prefix_allowed_tokens_fn=only),
        n=2,
    )
    greedy = engine.generate(
        "Greek letters:", SamplingParams(max_tokens=12, prefix_allowed_tokens_fn=only)
    )
    beams = engine.generate(
        "Greek letters:",
        SamplingParams(max_tokens=6, prefix_allowed_tokens_fn=only),
        n=2,
        num_beams=2,
    )
    for result in [*sampled, *greedy, *beams]:
        assert result.token_ids and set(result.token_ids) <= set(allowed)


def test_stop_string_across_tokens(engine: Engine) -> None:
    script = ids_of(engine, " hello world. Next")  # " he" "llo" " world" "." " Next"
    params = SamplingParams(
        max_tokens=10, stop=["lo wor"], prefix_allowed_tokens_fn=forcing(script)
    )
    deltas, (result,) = events_of(engine.submit("Say", params))
    assert result.token_ids == script[:3]
    assert (result.text, result.finish_reason) == (" hel", "stop")
    assert "".join(d.text for d in deltas) == " hel"


def test_special_token_as_stop_string(engine: Engine) -> None:
    script = ids_of(engine, " Attention Is All You Need, Vaswani[END_REF] and more")
    params = SamplingParams(
        max_tokens=30, stop=["[END_REF]"], prefix_allowed_tokens_fn=forcing(script)
    )
    result = engine.generate("The Transformer [START_REF]", params)[0]
    assert result.text == " Attention Is All You Need, Vaswani"
    assert result.finish_reason == "stop" and result.token_ids[-1] == END_REF


def test_skip_special_tokens(engine: Engine) -> None:
    script = ids_of(engine, "[START_REF] A title, Author[END_REF]")
    kept = engine.generate(
        "x", SamplingParams(max_tokens=len(script), prefix_allowed_tokens_fn=forcing(script))
    )
    skipped = engine.generate(
        "x",
        SamplingParams(
            max_tokens=len(script),
            skip_special_tokens=True,
            prefix_allowed_tokens_fn=forcing(script),
        ),
    )
    assert kept[0].text == "[START_REF] A title, Author[END_REF]"
    assert skipped[0].text == " A title, Author"


def test_a_failing_request_does_not_stop_the_engine(engine: Engine) -> None:
    def broken(batch_id: int, ids: torch.Tensor) -> list[int]:
        raise RuntimeError("constraint exploded")

    with pytest.raises(RuntimeError, match="constraint exploded"):
        engine.generate("Hello", SamplingParams(max_tokens=4, prefix_allowed_tokens_fn=broken))
    assert engine.generate("Hello", SamplingParams(max_tokens=2))[0].token_ids


# ---- streaming ----------------------------------------------------------------------------


def test_deltas_arrive_in_order_and_add_up(engine: Engine) -> None:
    script = ids_of(engine, " The first law of thermodynamics\n\nNext")
    params = SamplingParams(max_tokens=20, stop=["\n\n"], prefix_allowed_tokens_fn=forcing(script))
    completion = engine.submit("Physics:", params)
    events = list(completion)
    assert isinstance(events[-1], Finished)
    assert all(isinstance(e, Delta) for e in events[:-1])
    result = events[-1].result
    assert "".join(e.text for e in events[:-1]) == result.text == " The first law of thermodynamics"
    assert [t for e in events[:-1] for t in e.token_ids] == result.token_ids
    assert completion.results == [result]


def test_several_choices_stream_with_their_index(engine: Engine) -> None:
    params = SamplingParams(max_tokens=6, temperature=2.0, seed=8, ignore_eos=True)
    deltas, results = events_of(engine.submit("Choices", params, n=3))
    assert sorted(r.index for r in results) == [0, 1, 2]
    for r in results:
        mine = [d for d in deltas if d.index == r.index]
        assert "".join(d.text for d in mine) == r.text
        assert [t for d in mine for t in d.token_ids] == r.token_ids


def test_async_iteration(engine: Engine) -> None:
    params = SamplingParams(max_tokens=8, ignore_eos=True)

    async def consume() -> list[Any]:
        completion = engine.submit("Async", params, loop=asyncio.get_running_loop())
        return [event async for event in completion]

    events = asyncio.run(consume())
    result = events[-1].result
    assert "".join(e.text for e in events[:-1]) == result.text
    assert result.token_ids == engine.generate("Async", params)[0].token_ids


def test_task_streams_to_on_text(tiny_model: GalacticaModel) -> None:
    script = ids_of(tiny_model.engine, " of thermodynamics states\n\n## More")
    pieces: list[str] = []
    result = tiny_model.run(
        tasks.complete("The first law", max_tokens=20),
        pieces.append,
        prefix_allowed_tokens_fn=forcing(script),
    )
    assert "".join(pieces) == result["text"] == " of thermodynamics states"
    assert result["finish_reason"] == "stop"


# ---- cancellation -------------------------------------------------------------------------


def test_cancel_a_long_generation_from_another_thread(engine: Engine) -> None:
    prompt = "Once upon a time"
    prompt_len = len(engine.encode(prompt))
    generated = [0]

    def track(batch_id: int, ids: torch.Tensor) -> list[int]:  # the worker's progress
        generated[0] = len(ids) - prompt_len
        return []

    params = SamplingParams(max_tokens=1500, ignore_eos=True, prefix_allowed_tokens_fn=track)
    completion = engine.submit(prompt, params)
    at_cancel = None
    results = []
    for event in completion:
        if isinstance(event, Delta) and at_cancel is None:
            canceller = threading.Thread(target=completion.cancel)
            canceller.start()
            canceller.join()
            at_cancel = generated[0]
        elif isinstance(event, Finished):
            results.append(event.result)
    (result,) = results
    assert result.finish_reason == "cancelled"
    assert at_cancel is not None and len(result.token_ids) <= at_cancel + 2
    assert (
        engine.generate("And then", SamplingParams(max_tokens=3, ignore_eos=True))[0].finish_reason
        == "length"
    )


def test_cancel_a_queued_request(engine: Engine) -> None:
    gate = Gate(after=1)
    blocker = engine.submit("Blocking", SamplingParams(max_tokens=3, prefix_allowed_tokens_fn=gate))
    gate.hold()
    queued = engine.submit("Never started", SamplingParams(max_tokens=50))
    queued.cancel()
    gate.open()
    (result,) = queued.wait()
    assert (result.finish_reason, result.token_ids, result.text) == ("cancelled", [], "")
    assert blocker.wait()[0].finish_reason in ("length", "stop")


def test_cancel_beam_search(engine: Engine) -> None:
    started = threading.Event()
    holder: list[Any] = []

    def cancel_at_step_two(batch_id: int, ids: torch.Tensor) -> list[int]:
        if len(ids) - prompt_len >= 2 and not holder[0].cancelled.is_set():
            started.wait(timeout=60)
            canceller = threading.Thread(target=holder[0].cancel)
            canceller.start()
            canceller.join()
        return []

    prompt = "Beam me up"
    prompt_len = len(engine.encode(prompt))
    params = SamplingParams(max_tokens=200, prefix_allowed_tokens_fn=cancel_at_step_two)
    holder.append(engine.submit(prompt, params, n=2, num_beams=2))
    started.set()
    results = holder[0].wait()
    assert [r.finish_reason for r in results] == ["cancelled", "cancelled"]
    assert all(len(r.token_ids) <= 4 for r in results)


# ---- continuous batching and prefix reuse -----------------------------------------------------


def test_concurrent_requests_match_each_alone(engine: Engine) -> None:
    prompts = [
        "Hello",
        "Proteins fold into three dimensional structures because of the hydrophobic effect, which",
        "x",
        "The blocking prompt is here and then",  # extends the running blocker's prompt
        "The Transformer architecture",
    ]
    steps = [9, 14, 5, 11, 7]
    expected = [
        reference(engine.model, engine.encode(p), n) for p, n in zip(prompts, steps, strict=True)
    ]
    gate = Gate(after=3)
    blocker = engine.submit(
        "The blocking prompt is here", SamplingParams(max_tokens=8, prefix_allowed_tokens_fn=gate)
    )
    gate.hold()  # the blocker is mid-flight: the others join a running, padded batch
    before = engine.steps
    completions = [
        engine.submit(p, SamplingParams(max_tokens=n, logprobs=0, ignore_eos=False))
        for p, n in zip(prompts, steps, strict=True)
    ]
    gate.open()
    results = [c.wait()[0] for c in completions]
    blocker.wait()
    for result, want in zip(results, expected, strict=True):
        assert_same_greedy(result, want)
    assert engine.steps - before < sum(steps)  # they ran together, not one after another


def test_concurrent_seeded_samples_match_each_alone(engine: Engine) -> None:
    prompts = ["Sampling one", "Sampling number two is longer than one", "Three"]
    alone = [
        engine.generate(p, SamplingParams(max_tokens=6, temperature=1.5, seed=i, ignore_eos=True))[
            0
        ].token_ids
        for i, p in enumerate(prompts)
    ]
    gate = Gate(after=1)
    blocker = engine.submit("Gate", SamplingParams(max_tokens=3, prefix_allowed_tokens_fn=gate))
    gate.hold()
    completions = [
        engine.submit(p, SamplingParams(max_tokens=6, temperature=1.5, seed=i, ignore_eos=True))
        for i, p in enumerate(prompts)
    ]
    gate.open()
    assert [c.wait()[0].token_ids for c in completions] == alone
    blocker.wait()


def test_requests_joining_one_by_one(engine: Engine) -> None:
    """Each request joins while the earlier ones run, at a different step and cache width."""
    prompts = [
        "A first prompt that is rather long, longer than the others by far",
        "Second",
        "A first prompt that is rather long",
        "Fourth one here",
    ]
    expected = [reference(engine.model, engine.encode(p), 10) for p in prompts]
    completions: list[Any] = []
    pending = list(prompts[1:])

    def submit_next(batch_id: int, ids: torch.Tensor) -> list[int]:  # runs on the worker
        if pending:
            completions.append(
                engine.submit(pending.pop(0), SamplingParams(max_tokens=10, logprobs=0))
            )
        return []

    first = engine.submit(
        prompts[0], SamplingParams(max_tokens=10, logprobs=0, prefix_allowed_tokens_fn=submit_next)
    )
    results = [first.wait()[0]] + [c.wait()[0] for c in completions]
    for result, want in zip(results, expected, strict=True):
        assert_same_greedy(result, want)


def test_prefix_reuse_matches_a_cold_run(engine: Engine, tiny_model: GalacticaModel) -> None:
    base = "Citation graphs connect papers: a paper cites the works it builds on, and"
    first = engine.generate(base, SamplingParams(max_tokens=6, ignore_eos=True))[0]
    grown = base + first.text + " so on"
    hits, reused = engine.prefix_cache.hits, engine.prefix_cache.reused_tokens
    warm = engine.generate(grown, SamplingParams(max_tokens=10, logprobs=0))[0]
    assert engine.prefix_cache.hits > hits
    assert warm.reused_tokens >= len(engine.encode(base))
    assert engine.prefix_cache.reused_tokens - reused == warm.reused_tokens
    cold_engine = Engine(tiny_model.loaded, prefix_cache_bytes=0)
    try:
        cold = cold_engine.generate(grown, SamplingParams(max_tokens=10, logprobs=0))[0]
    finally:
        cold_engine.close()
    assert cold.reused_tokens == 0
    assert warm.token_ids == cold.token_ids
    assert_same_greedy(warm, reference(engine.model, engine.encode(grown), 10))


def test_a_lone_requests_cache_reaches_the_prefix_cache_uncopied(
    tiny_model: GalacticaModel,
) -> None:
    """The prompt's cache (room for its completion) becomes the batch's and then the prefix
    cache's entry: the entry still has the unused room of the last token, which a copy would
    not; a later request extending it matches a cold run (``test_prefix_reuse_...``)."""
    from galactica_ext.engine.kvcache import held_bytes, kv_bytes

    engine = Engine(tiny_model.loaded)
    prompt = "Lone requests keep their buffers: " + "the cache " * 20
    try:
        engine.generate(prompt, SamplingParams(max_tokens=5, ignore_eos=True))
    finally:
        engine.close()  # the worker finishes its step (the entry is put), then stops
    entries = list(engine.prefix_cache._entries.values())
    assert len(entries) == 1
    (layers,) = entries
    length = len(engine.encode(prompt)) + 4  # the last token is never fed
    assert layers[0][0].shape[-2] == length
    assert held_bytes(layers) == kv_bytes(layers) * (length + 1) // length


def test_an_editors_next_prompt_writes_on_the_entry_it_supersedes(
    tiny_model: GalacticaModel,
) -> None:
    """Pause after pause of one document, the next prompt takes the prefix cache's entry and
    writes its tokens into the entry's buffers (the document's cache is not copied; it grows
    only when its room runs out), and each warm answer is the cold one."""
    engine = Engine(tiny_model.loaded)
    cold_engine = Engine(tiny_model.loaded, prefix_cache_bytes=0)
    text = "Proteins fold into structures that determine what they do, " * 30
    buffers: list[list[int]] = []  # per pause: the batch's key buffer at each decoding step

    def seen(batch_id: int, ids: torch.Tensor) -> list[int]:  # on the worker, while decoding
        if engine._batch.cache is not None:
            buffers[-1].append(engine._batch.cache.layers[0].buffers[0].data_ptr())
        return []

    try:
        for pause in range(5):
            text += " and so"  # what was typed since the last pause
            buffers.append([])
            params = SamplingParams(max_tokens=3, ignore_eos=True, prefix_allowed_tokens_fn=seen)
            warm = engine.generate(text, params)[0]
            cold = cold_engine.generate(text, SamplingParams(max_tokens=3, ignore_eos=True))[0]
            assert warm.token_ids == cold.token_ids
            assert (warm.reused_tokens > len(engine.encode(text)) - 8) == (pause > 0)
    finally:
        engine.close()
        cold_engine.close()
    assert engine.prefix_cache.entries == 1
    assert all(buffers)
    # the first warm pause wrote into the cold prompt's buffer until its room ran out (it grew
    # by a quarter); every pause after it wrote into that grown buffer
    assert buffers[1][0] == buffers[0][-1] != buffers[1][-1]
    assert {ptr for pause in buffers[2:] for ptr in pause} == {buffers[1][-1]}


def test_a_cold_prompt_makes_room_in_the_prefix_cache_before_it_runs(
    tiny_model: GalacticaModel,
) -> None:
    """With a budget of two documents, a third document's prompt drops the oldest entry
    before it is computed (its cache and a full prefix cache are never held at once)."""
    documents = [f"Document {i} is about {topic}. " * 25 for i, topic in enumerate("ABC")]
    probe = Engine(tiny_model.loaded, prefix_cache_bytes=0)
    per_token = probe._kv_bytes_per_token()
    longest = max(len(probe.encode(d)) for d in documents)
    probe.close()
    engine = Engine(tiny_model.loaded, prefix_cache_bytes=2 * (longest + 8) * per_token)
    held_while_running: list[tuple[int, int]] = []

    def seen(batch_id: int, ids: torch.Tensor) -> list[int]:  # on the worker, while decoding
        held_while_running.append((engine.prefix_cache.entries, engine.prefix_cache.bytes))
        return []

    try:
        for document in documents[:2]:
            engine.generate(document, SamplingParams(max_tokens=2, ignore_eos=True))
        engine.generate(
            documents[2],
            SamplingParams(max_tokens=2, ignore_eos=True, prefix_allowed_tokens_fn=seen),
        )
    finally:
        engine.close()
    assert held_while_running and all(entries == 1 for entries, _ in held_while_running)
    assert engine.prefix_cache.entries == 2  # the third document was put beside the second


def test_one_token_after_a_cached_prefix_is_a_decoding_step(tiny_model: GalacticaModel) -> None:
    """A prompt one token longer than a cached one runs that token as a decoding step (one
    call of the engine's step, no forward of the model), with the cold run's answer."""
    engine = Engine(tiny_model.loaded)
    cold_engine = Engine(tiny_model.loaded, prefix_cache_bytes=0)
    assert engine.decode_step is not None
    ids = engine.encode("A document the editor has seen before: " + "its words " * 20)
    step, calls = engine.decode_step, []

    def counted(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append(args[0].shape)
        return step(*args, **kwargs)

    try:
        engine.generate(ids, SamplingParams(max_tokens=1))  # cached: ids (the answer not fed)
        engine.decode_step = counted
        params = SamplingParams(max_tokens=1, logprobs=3)
        warm = engine.generate([*ids, 42], params)[0]
        cold = cold_engine.generate([*ids, 42], params)[0]
    finally:
        engine.close()
        cold_engine.close()
    assert warm.reused_tokens == len(ids)
    assert calls == [torch.Size([1, 1])]
    assert warm.token_ids == cold.token_ids
    for a, b in zip(warm.logprobs, cold.logprobs, strict=True):
        assert a.token_id == b.token_id and abs(a.logprob - b.logprob) < 1e-4


def test_queue_limit_and_close(tiny_model: GalacticaModel) -> None:
    small = Engine(tiny_model.loaded, max_queue=1, prefix_cache_bytes=0)
    gate = Gate(after=1)
    try:
        running = small.submit(
            "Running", SamplingParams(max_tokens=3, prefix_allowed_tokens_fn=gate)
        )
        gate.hold()
        waiting = small.submit("Waiting", SamplingParams(max_tokens=3))
        with pytest.raises(QueueFull):
            small.submit("One too many", SamplingParams(max_tokens=3))
        assert small.load == {"running": 1, "waiting": 1}
        gate.open()
        assert running.wait()[0].token_ids and waiting.wait()[0].token_ids
    finally:
        gate.open()
        small.close()
    with pytest.raises(RuntimeError, match="closed"):
        small.submit("After close", SamplingParams(max_tokens=3))


# ---- the context window -------------------------------------------------------------------


LONG = "word " * 2500


def test_a_task_cuts_a_long_prompt_from_the_left(tiny_model: GalacticaModel) -> None:
    engine = tiny_model.engine
    script = ids_of(engine, " of it all")
    request = tasks.complete(LONG + "The end", max_tokens=len(script))
    full = engine.encode(request.prompt)
    assert len(full) > 2048
    seen: list[list[int]] = []
    result = tiny_model.run(request, prefix_allowed_tokens_fn=forcing(script, seen))
    assert result["truncated"] is True
    assert seen[0] == full[-(2048 - len(script)) :]  # the end of the text is what the model sees
    assert result["text"] == " of it all"


def test_engine_refuses_a_prompt_over_the_context(engine: Engine) -> None:
    ids = engine.encode(LONG)
    with pytest.raises(PromptTooLong, match="truncate_prompt_tokens"):
        engine.submit(ids, SamplingParams(max_tokens=4))
    with pytest.raises(PromptTooLong):
        engine.submit(ids[:2045], SamplingParams(max_tokens=4))
    result = engine.generate(
        ids, SamplingParams(max_tokens=4, truncate_prompt_tokens=100, ignore_eos=True)
    )[0]
    assert (result.truncated, result.prompt_tokens, len(result.token_ids)) == (True, 100, 4)


def test_a_prompt_that_fills_the_context_exactly(engine: Engine) -> None:
    ids = engine.encode(LONG)[: 2048 - 3]
    result = engine.generate(ids, SamplingParams(max_tokens=3, ignore_eos=True))[0]
    assert (result.finish_reason, len(result.token_ids), result.truncated) == ("length", 3, False)


# ---- every task, end to end -----------------------------------------------------------------


def test_cite_suggestions_end_at_end_ref(tiny_model: GalacticaModel) -> None:
    request = tasks.cite("The Transformer architecture", n=3, max_tokens=16)
    result = tiny_model.run(request, logit_bias={END_REF: 100}, min_tokens=3)
    assert 1 <= len(result["suggestions"]) <= 3
    assert result["finish_reason"] == "stop"
    completion = tiny_model.engine.submit(
        request.prompt,
        SamplingParams(
            max_tokens=16, min_tokens=3, logit_bias={END_REF: 100}, stop_token_ids=[END_REF]
        ),
        n=3,
        num_beams=3,
    )
    for choice in completion.wait():
        assert len(choice.token_ids) == 4 and choice.token_ids[-1] == END_REF
        assert choice.finish_reason == "stop"


def test_cite_parses_title_and_author(tiny_model: GalacticaModel) -> None:
    engine = tiny_model.engine
    script = ids_of(engine, " Attention Is All You Need, Vaswani[END_REF]")
    seen: list[list[int]] = []
    result = tiny_model.run(
        tasks.cite("The Transformer architecture", n=2),
        prefix_allowed_tokens_fn=forcing(script, seen),
    )
    assert seen[0] == [592, 23121, 5219, 243, 4]  # ... [START_REF]
    assert result["suggestions"] == [
        {
            "text": "Attention Is All You Need, Vaswani",
            "title": "Attention Is All You Need",
            "author": "Vaswani",
        }
    ]
    sampled = tiny_model.run(
        tasks.cite("The Transformer architecture", n=2, top_p=0.9, seed=1),
        prefix_allowed_tokens_fn=forcing(script),
    )
    assert sampled["suggestions"][0]["author"] == "Vaswani"


@pytest.mark.parametrize(
    ("task", "text", "continuation", "key", "expected"),
    [
        (
            "equation",
            "The Schrodinger equation",
            " i\\hbar \\psi = H \\psi \\] where",
            "latex",
            "i\\hbar \\psi = H \\psi",
        ),
        (
            "summarise",
            "Proteins fold.",
            " Proteins fold fast.\n\nMore",
            "text",
            "Proteins fold fast.",
        ),
        ("ask", "What is DNA?", " A molecule.\n\nQuestion:", "text", "A molecule."),
        ("work", "What is 2+3?", "\n2+3 = 5\n</work>\n\nAnswer: 5\n\nQuestion: x", "answer", "5"),
        ("complete", "The first law", " of thermodynamics\n\n# Next", "text", " of thermodynamics"),
    ],
)
def test_each_task_stops_and_parses(
    tiny_model: GalacticaModel, task: str, text: str, continuation: str, key: str, expected: str
) -> None:
    engine = tiny_model.engine
    request = tasks.build(task, text)
    seen: list[list[int]] = []
    result = tiny_model.run(
        request, prefix_allowed_tokens_fn=forcing(ids_of(engine, continuation), seen)
    )
    assert result[key] == expected
    assert (result["finish_reason"], result["truncated"]) == ("stop", False)
    assert seen[0] == engine.encode(request.prompt)
    assert engine.tokenizer.decode(seen[0]) == request.prompt


def test_every_task_runs_unforced(tiny_model: GalacticaModel) -> None:
    text = "Aspirin is [START_SMILES]CC(=O)OC1=CC=CC=C1C(=O)O[END_SMILES], a drug"
    assert "suggestions" in tiny_model.cite(text, n=2, max_tokens=8)
    assert "suggestions" in tiny_model.cite(text, n=2, max_tokens=8, diverse=True)
    assert "latex" in tiny_model.equation(text, max_tokens=8)
    for method in (tiny_model.summarise, tiny_model.complete, tiny_model.ask, tiny_model.work):
        result = method(text, max_tokens=8)
        assert isinstance(result["text"], str) and result["truncated"] is False
        assert result["finish_reason"] in ("stop", "length")
    assert isinstance(tiny_model.generate(text, max_tokens=4), str)


# ---- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["cite", "equation", "summarise", "complete", "ask", "work"])
def test_tasks_refuse_empty_text_and_absurd_limits(tiny_model: GalacticaModel, method: str) -> None:
    run = getattr(tiny_model, method)
    with pytest.raises(ValueError, match="empty"):
        run("   ")
    for max_tokens in (0, -1, 10**6):
        with pytest.raises(ValueError, match="max_tokens"):
            run("Some text", max_tokens=max_tokens)


@pytest.mark.parametrize(
    "params",
    [
        {"max_tokens": 0},
        {"max_tokens": -1},
        {"max_tokens": 10**6},
        {"max_tokens": 2048},
        {"max_tokens": True},
        {"temperature": -0.5},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"top_k": -1},
        {"min_tokens": 100},
        {"logprobs": 21},
        {"logit_bias": {5: 1000}},
        {"logit_bias": {-1: 1}},
        {"truncate_prompt_tokens": 0},
    ],
)
def test_engine_refuses_bad_sampling(engine: Engine, params: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        engine.submit("Hello", SamplingParams(**{"max_tokens": 8, **params}))


def test_engine_refuses_bad_prompts_and_choices(engine: Engine) -> None:
    for prompt in ("", []):
        with pytest.raises(ValueError, match="empty"):
            engine.submit(prompt, SamplingParams(max_tokens=4))
    with pytest.raises(ValueError, match="token ids"):
        engine.submit([5, 50_000], SamplingParams(max_tokens=4))
    for n in (0, 17):
        with pytest.raises(ValueError, match="n="):
            engine.submit("Hello", SamplingParams(max_tokens=4), n=n)
    with pytest.raises(ValueError, match="beams"):
        engine.submit("Hello", SamplingParams(max_tokens=4), n=3, num_beams=2)
    with pytest.raises(ValueError, match="max_tokens"):
        GalacticaModel.generate(engine_owner(engine), "Hello", max_tokens=0)
    assert engine.load == {"running": 0, "waiting": 0}
    assert engine.generate("Still serving", SamplingParams(max_tokens=2))[0].token_ids


def engine_owner(engine: Engine) -> Any:
    """A GalacticaModel view of an engine (its ``generate`` needs only ``.engine``)."""
    owner = object.__new__(GalacticaModel)
    owner.engine = engine
    owner.loaded = engine.loaded
    return owner
