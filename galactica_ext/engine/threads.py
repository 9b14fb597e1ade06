"""Choose torch's CPU thread count by timing a few decoding steps of the loaded model.

No fixed rule fits every machine and model: a galactica-125m step (~12 ms) is short enough
that another busy process, or the agent's own HTTP loop, stalls every step when a thread runs
on every core, so one thread per free core wins there; a galactica-1.3b step reads 2.6 GB of
bfloat16 weights, one thread cannot draw the machine's memory bandwidth, and more threads
decode faster (issue 13: one thread left half the bandwidth unused at 1.3b). So the agent
measures: a few decoding steps with each candidate (one thread, every core but one, every
core), interleaved, and keeps the fastest; fewer threads win unless more are clearly faster
(:data:`MARGIN`), since a thread count chosen under a passing load should not hog the machine.
The measurement costs a few steps per candidate (galactica-1.3b on 2 cores: ~5 s at load),
timed as the engine runs them: through ``model(...)`` the int8 galactica-1.3b step measured
53.0 ms with 1 thread and 54.9 ms with 2 at load, where the engine's own step takes 47 and 41.
Prompts are timed too (a short prefill per candidate): they are bound by compute, not by
bandwidth, and more threads help them where they would not help a step. What is chosen at load
is where :class:`.thread_tuner.ThreadTuner` starts; the engine goes on measuring as it runs.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

log = logging.getLogger(__name__)

#: more threads must be at least this much faster (step time) to be chosen. 10% kept int8
#: galactica-1.3b at one thread on 2 cores, where two are 6-15% faster (47 -> 41 ms a step;
#: the step's time, not the machine, is what a user waits for)
MARGIN = 0.05
#: ``$GALACTICA_THREADS``: "auto" (calibrate at load) or a number; unset: leave torch's setting
THREADS_ENV = "GALACTICA_THREADS"


@dataclass
class ThreadSetting:
    """Where the engine's thread counts come from: ``choices`` to adapt among (one: fixed),
    and the count each kind of work ("step", "prompt") starts with."""

    choices: list[int]
    initial: dict[str, int] = field(default_factory=dict)

    @property
    def adaptive(self) -> bool:
        return len(self.choices) > 1


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def candidates(cores: int | None = None) -> list[int]:
    """One thread, every core but one, every core (deduplicated, ascending)."""
    cores = cores or usable_cores()
    return sorted({1, max(1, cores - 1), cores})


def _step_seconds(model: nn.Module, threads: int, steps: int, prompt: int = 16) -> float:
    """Median seconds of ``steps`` single-token decoding steps after a ``prompt``-token
    prefill, with ``threads`` threads: the engine's own step (:class:`.decode_step.DecodeStep`
    on a cache written in place) where it applies, else the model's forward."""
    from transformers import DynamicCache

    from .decode_step import DecodeStep
    from .kvcache import BatchKV
    from .prefill import prefill

    torch.set_num_threads(threads)
    ids = torch.arange(prompt).unsqueeze(0) + 100
    step = DecodeStep.build(model)
    if step is not None:
        with torch.inference_mode():
            device = next(model.parameters()).device
            _, layers = prefill(model, device, ids[0].tolist(), None, 0)
            batch = BatchKV()
            batch.add(layers)
            token = torch.tensor([[7]], device=device)
            times = []
            for i in range(steps):
                start = time.perf_counter()
                step(token, torch.tensor([[prompt + i]], device=device), batch.cache)
                batch.grew()
                times.append(time.perf_counter() - start)
        return statistics.median(times)
    with torch.inference_mode():
        cache = DynamicCache()
        out = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        times = []
        for i in range(steps):
            start = time.perf_counter()
            out = model(
                input_ids=token,
                position_ids=torch.tensor([[prompt + i]]),
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            token = out.logits[:, -1].argmax(-1, keepdim=True)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _prompt_seconds(model: nn.Module, threads: int, tokens: int = 64) -> float:
    """Seconds of one ``tokens``-token prefill with ``threads`` threads."""
    torch.set_num_threads(threads)
    ids = torch.arange(tokens).unsqueeze(0) + 100
    with torch.inference_mode():
        start = time.perf_counter()
        model(input_ids=ids, use_cache=False, logits_to_keep=1)
        return time.perf_counter() - start


def _fewest_clearly_fastest(seconds: dict[int, float]) -> int:
    """The fewest threads, unless more are at least :data:`MARGIN` faster."""
    counts = sorted(seconds)
    chosen = counts[0]
    for n in counts[1:]:  # ascending: more threads only when clearly faster
        if seconds[n] < (1 - MARGIN) * seconds[chosen]:
            chosen = n
    return chosen


def _interleaved_medians(
    choices: list[int], rounds: int, seconds_with: Callable[[int], float]
) -> dict[int, float]:
    """The median of ``seconds_with(n)`` for each count ``n``, the order rotating each round
    (so a passing load falls on every count alike)."""
    seen: dict[int, list[float]] = {n: [] for n in choices}
    for r in range(rounds):
        for n in choices[r % len(choices) :] + choices[: r % len(choices)]:
            seen[n].append(seconds_with(n))
    return {n: statistics.median(ts) for n, ts in seen.items()}


def calibrate_prompts(model: nn.Module, choices: list[int], rounds: int = 2) -> int:
    """Time a short prefill with each count in ``choices`` (interleaved) and return the one
    for prompts (torch's setting is left as the last timing set it)."""
    choices = sorted(set(choices))
    if len(choices) == 1:
        return choices[0]
    _prompt_seconds(model, choices[-1])  # warm-up
    seconds = _interleaved_medians(choices, rounds, lambda n: _prompt_seconds(model, n))
    chosen = _fewest_clearly_fastest(seconds)
    log.info(
        "threads for prompts: %d (64-token prompt %s)",
        chosen,
        ", ".join(f"{n} threads {1000 * s:.1f} ms" for n, s in seconds.items()),
    )
    return chosen


def calibrate_threads(
    model: nn.Module, choices: list[int] | None = None, steps: int = 3, rounds: int = 4
) -> tuple[int, dict[int, float]]:
    """Time decoding steps with each thread count in ``choices`` (interleaved, ``rounds``
    times), set torch to the chosen count and return it with the median step seconds of each.
    """
    choices = sorted(set(choices or candidates()))
    if len(choices) == 1:
        torch.set_num_threads(choices[0])
        return choices[0], {}
    _step_seconds(model, choices[-1], 1)  # warm-up: first calls allocate and pick kernels
    step = _interleaved_medians(choices, rounds, lambda n: _step_seconds(model, n, steps))
    chosen = _fewest_clearly_fastest(step)
    torch.set_num_threads(chosen)
    log.info(
        "threads: %d (decoding step %s)",
        chosen,
        ", ".join(f"{n} threads {1000 * s:.1f} ms" for n, s in step.items()),
    )
    return chosen, step


def apply_threads(model: nn.Module, threads: int | str | None) -> ThreadSetting | None:
    """``threads`` (or ``$GALACTICA_THREADS``): "auto" calibrates steps and prompts and lets
    the engine adapt from there, a number is set and kept, None leaves torch's setting (and
    returns None). Raises ValueError for anything else.
    """
    if threads is None:
        threads = os.environ.get(THREADS_ENV) or None
        if threads is None:
            return None
    if threads == "auto":
        choices = candidates()
        prompts = calibrate_prompts(model, choices)
        steps = calibrate_threads(model, choices)[0]
        return ThreadSetting(choices, {"step": steps, "prompt": prompts})
    try:
        count = int(threads)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"threads {threads!r}: use 'auto' or a whole number >= 1")
    torch.set_num_threads(count)
    return ThreadSetting([count], {"step": count, "prompt": count})
