"""The engine's thread counts, measured as it runs (engine/thread_tuner.py).

The rules are checked on given forward times and a clock the test moves, so nothing here
depends on how fast this machine is; the last test runs the real engine with the tuner
trying counts at every forward and checks the tokens do not change.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import torch

from galactica_ext.engine import thread_tuner
from galactica_ext.engine.thread_tuner import (
    ROUNDS,
    ThreadTuner,
    cpu_share,
    crowded_below,
    work_kind,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keep_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def run_trial(tuner: ThreadTuner, kind: str, key, seconds: dict[int, float]) -> list[int]:
    """Feed forwards of one shape until the trial ends; the counts the tuner asked for."""
    asked = []
    for _ in range(4 * ROUNDS):
        threads = tuner.pick(kind, key)
        asked.append(threads)
        tuner.record(kind, key, threads, seconds[threads])
        if tuner.kinds[kind].trial is None:
            break
    return asked


def test_kinds_of_work() -> None:
    assert work_kind(1, 1) == ("step", (1, 1))
    assert work_kind(4, 1) == ("step", (4, 1))
    assert work_kind(1, 5)[0] == "step"  # a warm prompt's few new tokens
    assert work_kind(1, 1000) == ("prompt", 10)
    assert work_kind(8, 4)[0] == "prompt"


def test_one_choice_never_tries_another() -> None:
    clock = Clock()
    tuner = ThreadTuner([3], clock=clock)
    clock.now = 1e6
    assert not tuner.adaptive
    assert tuner.pick("step", (1, 1)) == 3 and tuner.kinds["step"].trial is None


def test_more_threads_only_when_clearly_faster_fewer_when_not_slower() -> None:
    clock = Clock()
    tuner = ThreadTuner([1, 2], {"step": 1, "prompt": 1}, every=2.0, clock=clock)
    assert tuner.pick("step", (1, 1)) == 1  # no trial before `every` seconds
    clock.now = 2.0
    # 3% faster with 2 threads: not enough, stays at 1; the next trial waits twice as long
    asked = run_trial(tuner, "step", (1, 1), {1: 0.0100, 2: 0.0097})
    assert asked == [1, 2] * ROUNDS
    assert tuner.describe()["step"] == 1 and tuner.kinds["step"].next_trial == 2.0 + 4.0
    clock.now = 6.0
    run_trial(tuner, "step", (1, 1), {1: 0.0100, 2: 0.0080})  # 20% faster: taken
    assert tuner.describe() == {"step": 2, "prompt": 2} and tuner.switches == 1  # idle cores
    assert tuner.kinds["step"].next_trial == 6.0 + 2.0  # a change: look again soon
    clock.now = 8.0
    asked = run_trial(tuner, "step", (1, 1), {1: 0.0080, 2: 0.0080})  # fewer, no slower
    assert asked == [2, 1] * ROUNDS and tuner.describe()["step"] == 1
    assert tuner.describe()["prompt"] == 2  # a step no faster with 2 says nothing of prompts
    clock.now = 100.0
    run_trial(tuner, "prompt", work_kind(1, 100)[1], {1: 0.05, 2: 0.05})
    assert tuner.describe() == {"step": 1, "prompt": 1}  # prompts measure for themselves


def test_a_far_slower_count_ends_the_trial_at_once_and_trials_back_off() -> None:
    clock = Clock()
    tuner = ThreadTuner([1, 2], {"step": 1}, every=1.0, clock=clock)
    waits = []
    for _ in range(6):
        clock.now = tuner.kinds["step"].next_trial
        start = clock.now
        asked = run_trial(tuner, "step", (1, 1), {1: 0.06, 2: 1.1})  # a busy machine
        assert asked == [1, 2]  # one forward of the other count, not ROUNDS
        waits.append(tuner.kinds["step"].next_trial - start)
    assert waits == [2.0, 4.0, 8.0, 16.0, 16.0, 16.0]  # up to MAX_BACKOFF x every
    assert tuner.describe()["step"] == 1


def test_a_far_slower_step_falls_back_to_one_thread_at_once() -> None:
    """Another process busy on one core: every barrier of a 2-thread forward waits for the
    descheduled thread (measured 20-40x slower); the tuner must not wait for a trial."""
    clock = Clock()
    tuner = ThreadTuner([1, 2], {"step": 2, "prompt": 2}, every=2.0, clock=clock)
    tuner.record("step", (1, 1), 2, 0.010)
    tuner.record("step", (1, 1), 2, 0.025)  # 2.5x: noise, not the pathology
    assert tuner.describe() == {"step": 2, "prompt": 2} and tuner.fallbacks == 0
    tuner.record("step", (1, 5), 2, 0.400)  # a shape never seen: nothing to compare with
    assert tuner.describe()["step"] == 2
    tuner.record("step", (1, 1), 2, 0.300)  # one far slower step: a hiccup, maybe
    tuner.record("step", (1, 1), 2, 0.011)
    tuner.record("step", (1, 1), 2, 0.300)
    assert tuner.describe()["step"] == 2 and tuner.fallbacks == 0
    tuner.record("step", (1, 1), 2, 0.300)  # two in a row: another process on our cores
    # prompts keep theirs: a client reading the stream is busy while steps run, not while
    # it waits for a first token; a crowded prompt falls back by itself (below)
    assert tuner.describe() == {"step": 1, "prompt": 2} and tuner.fallbacks == 1
    assert tuner.kinds["step"].next_trial == 4.0  # a trial tries 2 threads again later ...
    tuner.record("step", (1, 1), 1, 0.500)
    assert tuner.describe()["step"] == 1 and tuner.fallbacks == 1  # ... nothing below one
    clock.now = 4.0
    run_trial(tuner, "step", (1, 1), {1: 0.015, 2: 0.010})  # the other process has stopped
    assert tuner.describe() == {"step": 2, "prompt": 2}


def test_a_trial_compares_one_shape_only(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    tuner = ThreadTuner([1, 2], {"step": 1}, every=1.0, clock=clock)
    clock.now = 1.0
    assert tuner.pick("step", (1, 1)) == 1
    tuner.record("step", (1, 1), 1, 0.010)
    assert tuner.pick("step", (1, 1)) == 2
    # the batch grew meanwhile: its forwards use the chosen count and do not count
    assert tuner.pick("step", (2, 1)) == 1
    tuner.record("step", (2, 1), 1, 0.500)
    assert tuner.kinds["step"].trial.seen == {1: [0.010]}
    monkeypatch.setattr(thread_tuner, "TRIAL_PATIENCE", 3)
    for _ in range(4):  # the first shape never comes back: the trial is dropped
        tuner.pick("step", (2, 1))
    assert tuner.kinds["step"].trial is None and tuner.describe()["step"] == 1


def test_long_prompts_never_start_a_trial_short_ones_and_steps_decide() -> None:
    clock = Clock()
    tuner = ThreadTuner([1, 2], {"step": 1, "prompt": 1}, every=1.0, clock=clock)
    clock.now = 5.0
    long_key = work_kind(1, 1000)[1]
    assert tuner.pick("prompt", long_key) == 1 and tuner.kinds["prompt"].trial is None
    short_key = work_kind(1, 100)[1]
    run_trial(tuner, "prompt", short_key, {1: 0.10, 2: 0.05})
    assert tuner.pick("prompt", long_key) == 2  # what the short ones measured
    clock.now = 50.0
    run_trial(tuner, "step", (1, 1), {1: 0.010, 2: 0.005})  # steps: 2 threads, clearly
    clock.now = tuner.kinds["step"].next_trial
    run_trial(tuner, "step", (1, 1), {1: 0.010, 2: 0.010})  # then: fewer is no slower
    assert tuner.describe()["step"] == 1
    assert tuner.pick("prompt", long_key) == 2  # bandwidth-bound steps say nothing of prompts


def test_a_crowded_prompt_falls_back_at_once_and_tries_again_later() -> None:
    """A prompt's threads that did not get their cores (measured: CPU share 0.61-0.75 with 2
    threads beside one busy process, 0.96-1.01 idle) drop prompts to the next fewer count;
    a later prompt tries the count again, backing off while it stays crowded."""
    clock = Clock()
    tuner = ThreadTuner([1, 3, 4], {"step": 1, "prompt": 4}, every=1.0, clock=clock)
    long_key = work_kind(1, 256)[1]
    assert crowded_below(2) == pytest.approx(0.85) and crowded_below(4) > crowded_below(2)
    tuner.record("prompt", long_key, 4, 0.10, share=0.95)  # idle enough at 4 threads
    assert tuner.describe()["prompt"] == 4 and tuner.prompts_may_fall_back()
    tuner.record("prompt", long_key, 4, 0.30, share=0.80)  # crowded: the next fewer at once
    assert tuner.describe()["prompt"] == 3 and tuner.fallbacks == 1
    assert tuner.pick("prompt", long_key) == 3 and tuner.pick("prompt", work_kind(1, 64)[1]) == 3
    tuner.record("prompt", long_key, 3, 0.40, share=0.5)  # still crowded: 3 -> 1
    assert tuner.describe()["prompt"] == 1 and not tuner.prompts_may_fall_back()
    waits = []
    for _ in range(3):  # tried again later, crowded again each time: backing off
        start = clock.now
        assert tuner.pick("prompt", long_key) == 1
        clock.now = tuner.kinds["prompt"].next_trial
        assert tuner.pick("prompt", long_key) == 4
        tuner.record("prompt", long_key, 4, 0.30, share=0.6)
        waits.append(tuner.kinds["prompt"].next_trial - clock.now)
        assert start <= clock.now
    assert waits == [8.0, 16.0, 16.0] and tuner.describe()["prompt"] == 1
    clock.now = tuner.kinds["prompt"].next_trial
    assert tuner.pick("prompt", long_key) == 4
    tuner.record("prompt", long_key, 4, 0.10, share=0.97)  # the other process has stopped
    assert tuner.describe()["prompt"] == 4 and tuner.kinds["prompt"].crowded_from is None
    tuner.record("prompt", long_key, 1, 0.40, share=0.3)  # one thread has nothing below it
    assert tuner.describe()["prompt"] == 4
    assert tuner.describe()["step"] == 1  # steps are tuned apart


def test_a_forward_without_its_cores_counts_as_crowded(keep_threads) -> None:
    """``run`` measures the share itself: a forward that waits (no CPU, as a thread whose
    core another process holds) with 2 threads is crowded; steps are not judged by it."""
    tuner = ThreadTuner([1, 2], {"step": 2, "prompt": 2})
    tuner.run(1, 1, lambda: time.sleep(0.02))
    assert tuner.describe() == {"step": 2, "prompt": 2}
    tuner.run(1, 300, lambda: time.sleep(0.02))
    assert tuner.describe() == {"step": 2, "prompt": 1} and tuner.fallbacks == 1
    assert cpu_share(0.5, 0.25, 2) == 1.0


def test_the_engine_adapting_threads_decodes_the_same_tokens(tiny_model, keep_threads) -> None:
    from galactica_ext.engine.sampling import SamplingParams
    from galactica_ext.engine.scheduler import Engine

    params = SamplingParams(max_tokens=24, ignore_eos=True)
    prompts = ["The Transformer architecture", "A short prompt " * 20]  # a step, a prompt
    fixed = Engine(tiny_model.loaded, prefix_cache_bytes=0)
    adapting = Engine(tiny_model.loaded, prefix_cache_bytes=0)
    try:
        fixed.threads = ThreadTuner([1])
        # a trial at every forward (every=0): the counts alternate all the time
        adapting.threads = ThreadTuner([1, 2], {"step": 1, "prompt": 1}, every=0.0)
        for prompt in prompts:
            want = fixed.generate(prompt, params)[0].token_ids
            got = adapting.generate(prompt, params)[0].token_ids
            assert got == want
        trials = adapting.threads
        assert trials.current in (1, 2)
        assert (
            trials.kinds["step"].trial is not None
            or trials.kinds["step"].backoff > 1
            or (trials.switches > 0)
        )  # trials ran
    finally:
        fixed.close()
        adapting.close()


@pytest.mark.parametrize("crowded", [False, True])
def test_long_prompts_run_in_chunks_while_they_could_fall_back(
    tiny_model, keep_threads, monkeypatch: pytest.MonkeyPatch, crowded: bool
) -> None:
    """A long prompt runs in chunks while it has more than one thread (each chunk can fall
    back), in one forward with one; the tokens are the same either way (float32). Whether a
    chunk was crowded is decided by the test (always or never), not by this machine's load."""
    from galactica_ext.engine import scheduler
    from galactica_ext.engine.sampling import SamplingParams
    from galactica_ext.engine.scheduler import Engine

    monkeypatch.setattr(scheduler, "PROMPT_CHUNK", thread_tuner.PROMPT_TOKENS)  # a prompt
    monkeypatch.setattr(thread_tuner, "crowded_below", lambda threads: 2.0 if crowded else 0.0)
    lengths: list[int] = []
    real_prefill = scheduler.prefill

    def counted(model, device, ids, cached, start):
        lengths.append(len(ids))
        return real_prefill(model, device, ids, cached, start)

    monkeypatch.setattr(scheduler, "prefill", counted)
    params = SamplingParams(max_tokens=12, ignore_eos=True)
    prompt = "The attention mechanism of a Transformer " * 16
    whole = Engine(tiny_model.loaded, prefix_cache_bytes=0)
    chunked = Engine(tiny_model.loaded, prefix_cache_bytes=0)
    try:
        whole.threads = ThreadTuner([1])  # one count: nothing to fall back from
        chunked.threads = ThreadTuner([1, 2], {"step": 1, "prompt": 2}, every=1e9)
        want = whole.generate(prompt, params)[0].token_ids
        assert len(lengths) == 1
        prompt_tokens = lengths.pop()
        chunk = scheduler.PROMPT_CHUNK
        assert prompt_tokens >= 3 * chunk
        got = chunked.generate(prompt, params)[0].token_ids
        assert got == want
        assert sum(lengths) == prompt_tokens
        if crowded:  # the first chunk was crowded: the rest in one forward, with 1 thread
            assert lengths == [chunk, prompt_tokens - chunk]
            assert chunked.threads.describe()["prompt"] == 1
        else:
            assert len(lengths) >= 3 and lengths[:-1] == [chunk] * (len(lengths) - 1)
            assert chunk <= lengths[-1] < 2 * chunk
            assert chunked.threads.describe()["prompt"] == 2
    finally:
        whole.close()
        chunked.close()
