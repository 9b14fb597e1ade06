"""In-process baselines: a plain ``model.generate``, our ``Engine``, and the memory bandwidth."""

from __future__ import annotations

import time
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


def step_breakdown(
    model, batch: int, context: int, threads: int, steps: int = 24
) -> dict[str, float]:
    """Milliseconds per decoding step of ``model`` (as the engine loads it) spent in the weight
    products, the attention and the KV cache append, timed by wrapping those functions (torch's
    profiler inflates small operators several-fold); ``batch`` sequences at ``context`` tokens,
    ``threads`` threads. The rest is layer norms, activations, residuals, logits, and Python."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer
    from transformers.modeling_utils import AttentionInterface

    from galactica_ext.engine.cpu import PackedLinear

    attention = model.config._attn_implementation
    timers = {
        "weight products (packed linears)": (PackedLinear, "forward"),
        "attention": (AttentionInterface._global_mapping, attention),
        "KV cache append (torch.cat)": (DynamicLayer, "update"),
    }
    saved = {}
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for name, (owner, key) in timers.items():
            get = owner.get if isinstance(owner, dict) else lambda k, o=owner: o.__dict__[k]
            saved[name] = get(key)
            timer = _Timer(saved[name])
            if isinstance(owner, dict):
                owner[key] = timer
            else:
                setattr(owner, key, lambda self, *a, _t=timer, **k: _t(self, *a, **k))
            timers[name] = (owner, key, timer)
        with torch.inference_mode():
            ids = (torch.arange(context) % 40000 + 100).repeat(batch, 1)
            cache = DynamicCache()
            out = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
            token = out.logits[:, -1].argmax(-1, keepdim=True)
            for _, _, timer in timers.values():
                timer.seconds = 0.0
            start = time.perf_counter()
            for i in range(steps):
                positions = torch.full((batch, 1), context + i)
                out = model(
                    input_ids=token,
                    position_ids=positions,
                    cache=cache,
                    use_cache=True,
                    logits_to_keep=1,
                )
                token = out.logits[:, -1].argmax(-1, keepdim=True)
            step = (time.perf_counter() - start) * 1000 / steps
    finally:
        torch.set_num_threads(before)
        for name, entry in timers.items():
            if name in saved:
                owner, key = entry[0], entry[1]
                if isinstance(owner, dict):
                    owner[key] = saved[name]
                else:
                    setattr(owner, key, saved[name])
    result = {name: timer.seconds * 1000 / steps for name, (_, _, timer) in timers.items()}
    result["everything else (norms, activations, logits, Python)"] = step - sum(result.values())
    result["step"] = step
    return result
