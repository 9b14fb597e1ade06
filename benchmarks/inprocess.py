"""In-process baselines: a plain ``model.generate``, our ``Engine``, and the memory bandwidth."""

from __future__ import annotations

import os
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch


@dataclass
class Rate:
    """One measured generation of ``tokens`` tokens."""

    tokens: int
    ttft: float  # start -> first new token
    decode: float  # tokens/s between the first and the last new token
    speed: float  # tokens/s from the request to the last token (robust to bursty streams)

    @classmethod
    def from_stamps(cls, start: float, stamps: list[float]) -> Rate:
        n = len(stamps)
        return cls(
            n,
            stamps[0] - start,
            (n - 1) / max(stamps[-1] - stamps[0], 1e-9),
            n / max(stamps[-1] - start, 1e-9),
        )


class _Clock:
    """A ``generate`` streamer that only timestamps tokens (its first ``put`` is the prompt)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.stamps.append(time.perf_counter())

    def end(self) -> None:
        pass


def generate_rate(model, prompt_ids: list[int], tokens: int) -> Rate:
    """Greedy ``model.generate`` of exactly ``tokens`` new tokens."""
    ids = torch.tensor([prompt_ids])
    clock = _Clock()
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            do_sample=False,
            streamer=clock,
        )
    assert out.shape[1] - ids.shape[1] == tokens, "generate stopped early"
    return Rate.from_stamps(start, clock.stamps)


def engine_rate(engine, prompt_ids: list[int], tokens: int) -> Rate:
    """Our ``Engine``, in-process, greedy, fixed length."""
    from galactica_ext.engine import Delta
    from galactica_ext.engine.sampling import SamplingParams

    params = SamplingParams(max_tokens=tokens, min_tokens=tokens, ignore_eos=True)
    start = time.perf_counter()
    stamps = []
    for event in engine.submit(list(prompt_ids), params):
        if isinstance(event, Delta) and event.token_ids:
            stamps.append(time.perf_counter())
    assert len(stamps) == tokens, f"the engine made {len(stamps)} tokens, not {tokens}"
    return Rate.from_stamps(start, stamps)


def copy_bandwidth(
    size_bytes: int = 1 << 30, repeats: int = 7, threads: int | None = None
) -> float:
    """Bytes/s of a large array copy (read + write counted, as STREAM does), the median of
    ``repeats`` copies, with torch's threads (one per core) or ``threads``."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    src = torch.ones(size_bytes // 4, dtype=torch.float32)
    dst = torch.empty_like(src)
    dst.copy_(src)  # fault the pages in
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - start)
    del src, dst
    torch.set_num_threads(before)
    times.sort()
    return 2 * size_bytes / times[len(times) // 2]


def weight_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def bytes_read_per_token(model) -> int:
    """Weights one decoding step reads: every matrix and vector, the (tied) embedding matrix
    once as the output projection, but only one row of the position embeddings."""
    total = weight_bytes(model)
    positions = model.model.decoder.embed_positions.weight
    return (
        total
        - positions.numel() * positions.element_size()
        + positions.shape[1] * positions.element_size()
    )


def kv_bytes_per_token(model) -> int:
    """Bytes of key/value cache one token of context adds, which each decoding step reads."""
    config = model.config
    element = next(model.parameters()).element_size()
    return 2 * config.num_hidden_layers * config.hidden_size * element


@contextmanager
def kernel_off(module):
    """An engine module's numba kernel (``bf16_attention``, ``few_rows``) turned off
    meanwhile, through its environment switch; as it was afterwards."""
    env = module.kernel.env
    before = os.environ.get(env)
    os.environ[env] = "torch"
    module.kernel.cache_clear()
    try:
        yield
    finally:
        if before is None:
            del os.environ[env]
        else:
            os.environ[env] = before
        module.kernel.cache_clear()


def interleaved_times(paths: dict, rounds: int) -> dict[str, list[float]]:
    """ms of each of ``paths`` (name -> a call) per round, after one warm-up call each, run in
    turn, the order alternating every round, so that a machine whose speed drifts slows all
    alike."""
    for run in paths.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in paths}
    for r in range(rounds):
        for name in paths if r % 2 == 0 else reversed(paths):
            start = time.perf_counter()
            paths[name]()
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def torch_attention():
    """The engine's torch decoding attention instead of its numba kernel, meanwhile."""
    from galactica_ext.engine import bf16_attention

    return kernel_off(bf16_attention)


class _Timer:
    """Wraps a function, adding up the wall time of its calls."""

    def __init__(self, fn):
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def _prefilled(model, batch: int, context: int):
    """A batch cache of ``batch`` copies of a ``context``-token prompt, and each row's first
    greedy token (``[batch, 1]``): where the decoding steps measured here start."""
    from galactica_ext.engine.kvcache import BatchKV
    from galactica_ext.engine.prefill import prefill

    ids = (torch.arange(context) % 40000 + 100).tolist()
    logits, layers = prefill(model, torch.device("cpu"), ids, None, 0)
    cache = BatchKV()
    for _ in range(batch):
        cache.add(layers)
    return cache, logits.argmax(-1).repeat(batch, 1).view(batch, 1)


def prefilled_step(model, batch: int, context: int):
    """What :func:`steps_in_turn` decodes from: the engine's decoding step for ``model``, and
    :func:`_prefilled`'s cache and tokens at ``context`` tokens."""
    from galactica_ext.engine.decode_step import DecodeStep

    step = DecodeStep.build(model)
    if step is None:
        raise RuntimeError("the engine's decoding step does not apply to this model")
    with torch.inference_mode():
        cache, token = _prefilled(model, batch, context)
    return step, cache, token, context


def steps_in_turn(states: dict, count: int) -> dict:
    """Decoding steps from each of ``states`` (name -> :func:`prefilled_step`'s tuple), one
    step each in turn, the order swapped every pair, so that a machine whose speed drifts
    slows all alike: ms of each of ``count`` steps per state, after two warm-up steps."""
    times: dict = {name: [] for name in states}
    order = list(states)
    with torch.inference_mode():
        for i in range(count + 2):
            for name in order if i % 2 == 0 else order[::-1]:
                step, cache, token, context = states[name]
                positions = torch.full((token.shape[0], 1), context + i)
                start = time.perf_counter()
                token = step(token, positions, cache.cache).argmax(-1, keepdim=True)
                times[name].append((time.perf_counter() - start) * 1000)
                cache.grew()
                states[name] = (step, cache, token, context)
    return {name: t[2:] for name, t in times.items()}


def alternated_steps(
    model, threads: int, near: int = 32, far: int = 1000, steps: int = 40
) -> dict[str, float]:
    """Decoding steps of one sequence at ``near`` and at ``far`` tokens of context, alternated
    step by step (:func:`steps_in_turn`, each context its own cache): median ms of each, and
    the median of the per-pair ratios (far ÷ near)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        times = steps_in_turn(
            {context: prefilled_step(model, 1, context) for context in (near, far)}, steps
        )
    finally:
        torch.set_num_threads(before)
    pairs = [b / a for a, b in zip(times[near], times[far], strict=True)]
    return {
        "near ms": statistics.median(times[near]),
        "far ms": statistics.median(times[far]),
        "ratio": statistics.median(pairs),
    }


def step_breakdown(
    model, batch: int, context: int, threads: int, steps: int = 24, fused: bool = True
) -> dict[str, float]:
    """Milliseconds per decoding step of ``model`` (as the engine loads it and decodes: its
    DecodeStep over a cache written in place) spent in the weight products, the attention and
    the KV cache writes, timed by wrapping those functions (torch's profiler inflates small
    operators several-fold); ``batch`` sequences at ``context`` tokens, ``threads`` threads.
    The rest is layer norms, activations, residuals, logits, and Python. Where the engine
    runs each layer as one kernel call (engine/fused_layers.py), those calls are their own row
    (products, attention, cache writes and norms inside); ``fused=False``: through the
    layers' modules instead."""
    from galactica_ext.engine import bf16_attention
    from galactica_ext.engine.cpu import PackedLinear
    from galactica_ext.engine.decode_step import DecodeStep
    from galactica_ext.engine.fused_layers import FusedLayers
    from galactica_ext.engine.kvcache import GrowingLayer
    from galactica_ext.engine.widened import WidenedLinear

    products = "weight products (packed or widened linears)"

    step = DecodeStep.build(model)
    if step is None:
        raise RuntimeError("the engine's decoding step does not apply to this model")
    if not fused:
        step.fused = None
    # oneDNN's packed products, or float32 products over bfloat16 weights (no AVX-512 BF16)
    linears = {cls: cls.forward for cls in (PackedLinear, WidenedLinear)}
    update = GrowingLayer.update
    writing = bf16_attention.write_and_attend
    fused_run = FusedLayers.run
    fused = "decoder layers, fused (their products, attention, cache writes, norms)"
    timers = {
        products: _Timer(lambda self, x: linears[type(self)](self, x)),
        "attention": _Timer(step.attention),
        "KV cache writes (in place)": _Timer(update),
        # the kernel that writes the cache and attends in one call (bfloat16): attention
        "attention, with the cache writes": _Timer(writing),
        fused: _Timer(lambda self, *a: fused_run(self, *a)),
    }
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            cache, token = _prefilled(model, batch, context)
            bare = []  # the same steps without the timers first
            for i in range(steps + 2):
                start = time.perf_counter()
                positions = torch.full((batch, 1), context + i)
                token = step(token, positions, cache.cache).argmax(-1, keepdim=True)
                cache.grew()
                bare.append(time.perf_counter() - start)
            unwrapped = statistics.median(bare[2:]) * 1000
            context += steps + 2
            for cls in linears:
                cls.forward = lambda self, x: timers[products](self, x)  # type: ignore[method-assign]
            GrowingLayer.update = lambda self, *a, **k: timers[  # type: ignore[method-assign]
                "KV cache writes (in place)"
            ](self, *a, **k)
            step.attention = timers["attention"]
            bf16_attention.write_and_attend = timers["attention, with the cache writes"]
            FusedLayers.run = lambda self, *a: timers[fused](self, *a)  # type: ignore[method-assign]
            for i in range(steps + 2):
                if i == 2:  # two warm-up steps, then time
                    for timer in timers.values():
                        timer.seconds = 0.0
                    start = time.perf_counter()
                positions = torch.full((batch, 1), context + i)
                token = step(token, positions, cache.cache).argmax(-1, keepdim=True)
                cache.grew()
            ms = (time.perf_counter() - start) * 1000 / steps
    finally:
        torch.set_num_threads(before)
        for cls, forward in linears.items():
            cls.forward = forward  # type: ignore[method-assign]
        GrowingLayer.update = update  # type: ignore[method-assign]
        bf16_attention.write_and_attend = writing
        FusedLayers.run = fused_run  # type: ignore[method-assign]
    result = {name: timer.seconds * 1000 / steps for name, timer in timers.items()}
    result["attention"] += result.pop("attention, with the cache writes")
    result["everything else (norms, activations, logits, Python)"] = ms - sum(result.values())
    result["step"] = ms
    result["step, unwrapped"] = unwrapped
    return result
