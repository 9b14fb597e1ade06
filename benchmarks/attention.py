"""The decoding attention alone: the numba kernel against the torch path, per layer.

    python benchmarks/attention.py [--threads N] [--rounds 30]

For one new query per sequence over a bfloat16 cache held as the engine holds it (the first
``tokens`` of a preallocated buffer), at the galactica-125m and galactica-1.3b shapes (12 and
32 heads of 64), 1 and 4 sequences, 32 and 1,000 tokens: microseconds per layer of
``engine.cpu._decode_attention`` with the kernel and with ``GALACTICA_DECODE_ATTENTION=torch``,
interleaved (the order alternates every round), over as many layers as the model has so the
caches come from memory, as in a step. The cache grows by a token every round, as in decoding.
Prints the machine, then a table and the kernel's speed-up per case, and the bytes per second
each reads.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

SHAPES = {"125m": (12, 12), "1.3b": (32, 24)}  # heads, layers (head_dim 64)
CASES = [(1, 32), (1, 1000), (4, 32), (4, 1000)]


def measure(heads: int, layers: int, rows: int, tokens: int, rounds: int) -> dict[str, float]:
    """Median µs per layer of each path, and the bytes of cache one layer reads."""
    from inprocess import torch_attention

    from galactica_ext.engine import bf16_attention
    from galactica_ext.engine.cpu import _decode_attention

    capacity = tokens + rounds + 64
    keys = [torch.randn(rows, heads, capacity, 64).bfloat16() for _ in range(layers)]
    values = [torch.randn(rows, heads, capacity, 64).bfloat16() for _ in range(layers)]
    query = torch.randn(rows, heads, 1, 64).bfloat16()
    module = torch.nn.Module()
    if bf16_attention.kernel() is None:
        raise SystemExit("the numba kernel does not run here: see the log")
    times: dict[str, list[float]] = {"kernel": [], "torch": []}
    for r in range(rounds):
        seen = tokens + r
        for path in ("kernel", "torch") if r % 2 == 0 else ("torch", "kernel"):
            with torch_attention() if path == "torch" else contextlib.nullcontext():
                start = time.perf_counter()
                for k, v in zip(keys, values, strict=True):
                    _decode_attention(module, query, k[:, :, :seen], v[:, :, :seen], None)
                times[path].append((time.perf_counter() - start) / layers * 1e6)
    result = {path: statistics.median(t) for path, t in times.items()}
    result["bytes"] = 2 * rows * heads * tokens * 64 * 2
    return result


def main(argv: list[str] | None = None) -> int:
    from run import machine_facts

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for key, value in machine_facts().items():
        print(f"{key}: {value}")
    print(f"\n{args.threads} threads, {args.rounds} rounds; µs per layer (median)\n")
    print("| shape | sequences × tokens | kernel | torch path | torch ÷ kernel | kernel GB/s |")
    print("|---|---|---|---|---|---|")
    for shape, (heads, layers) in SHAPES.items():
        for rows, tokens in CASES:
            r = measure(heads, layers, rows, tokens, args.rounds)
            print(
                f"| {shape} | {rows} × {tokens} | {r['kernel']:.0f} | {r['torch']:.0f} | "
                f"{r['torch'] / r['kernel']:.2f} | {r['bytes'] / r['kernel'] / 1e3:.1f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
