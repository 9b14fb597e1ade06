"""float32 decoding products: oneDNN's packed product against ``few_rows``' numba kernel.

    python benchmarks/products.py [--threads N ...] [--rounds 9] [--skip-steps]

float32 is what the agent runs on CPUs without AVX-512 BF16 (most laptops), with
galactica-125m its default model. A decoding step multiplies a row per sequence by every
weight matrix. This prints the machine, then, interleaved (the order alternating every round):

1. one to three rows through galactica-125m's layer matrices in turn (fused q/k/v, out, fc1,
   fc2 of 12 layers: 340 MB, so the weights come from memory as in a step) and through its
   output projection (50,000 × 768: 154 MB), oneDNN packed (as ``cpu.PackedLinear`` packs
   float32) against the kernel on the plain weight: ms, GB/s, and the ratio (the engine
   gives the kernel up to ``few_rows.MAX_ROWS`` rows: where it was measured faster);
2. the engine's decoding steps on the galactica-125m shape (random weights, cached as
   ``run.py`` builds them) for 1, 2 and 3 sequences, the model loaded as the agent loads it
   against the same load with ``GALACTICA_FEW_ROW_PRODUCT=torch``, step by step in turn:
   ms per step and the median of the per-pair ratios.

To see what a laptop without AVX-512 runs, set ``NUMBA_CPU_NAME=haswell`` and
``ONEDNN_MAX_CPU_ISA=AVX2`` (both libraries then emit AVX2 code; the memory stays this
machine's), with ``NUMBA_CACHE_DIR`` pointing at a fresh folder.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

WIDTH, LAYERS, VOCABULARY = 768, 12, 50000


def matrices(part: str) -> list[tuple[int, int]]:
    """(in, out) of each product, in the order a step runs them."""
    if part == "output projection":
        return [(WIDTH, VOCABULARY)]
    block = [(WIDTH, 3 * WIDTH), (WIDTH, WIDTH), (WIDTH, 4 * WIDTH), (4 * WIDTH, WIDTH)]
    return block * LAYERS


def products(shapes: list[tuple[int, int]], rows: int, rounds: int) -> dict[str, float]:
    """Median ms of ``rows`` rows through every matrix of ``shapes``, each path; their bytes."""
    from galactica_ext.engine import few_rows

    seeded = torch.Generator().manual_seed(0)
    layers = []
    for size, features in shapes:
        weight = torch.randn(features, size, generator=seeded) * 0.02
        bias = torch.randn(features, generator=seeded) * 0.02
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, 4)  # cpu.PACK_HINTS
        layers.append((weight, bias, packed, few_rows.FewRows(weight, bias)))
    inputs = {size: torch.randn(rows, size, generator=seeded) for size, _ in shapes}

    def onednn() -> None:
        for weight, bias, packed, _ in layers:
            x = inputs[weight.shape[1]]
            torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "none")

    def kernel() -> None:
        for weight, _, _, product in layers:
            product(inputs[weight.shape[1]])

    # the kernel measured past the engine's MAX_ROWS too: that is how it was chosen
    limit, few_rows.MAX_ROWS = few_rows.MAX_ROWS, max(rows, few_rows.MAX_ROWS)
    try:
        return _interleaved({"oneDNN": onednn, "kernel": kernel}, rounds) | {
            "bytes": sum(w.numel() * 4 for w, *_ in layers)
        }
    finally:
        few_rows.MAX_ROWS = limit


def _interleaved(paths: dict, rounds: int) -> dict[str, float]:
    """Median ms of each of ``paths``, run in turn, the order alternating every round."""

    for run in paths.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in paths}
    for r in range(rounds):
        for name in paths if r % 2 == 0 else reversed(paths):
            start = time.perf_counter()
            paths[name]()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def load(checkpoint: Path, kernel: bool):
    """The model as the agent loads it in float32, with or without the kernel."""
    from inprocess import kernel_off

    from galactica_ext.engine import few_rows
    from galactica_ext.engine.loading import LoadOptions, load_model

    with contextlib.nullcontext() if kernel else kernel_off(few_rows):
        return load_model(str(checkpoint), LoadOptions(dtype="float32", device="cpu")).model


def steps(models: dict, batch: int, count: int = 30) -> dict[str, float]:
    """Decoding steps of ``batch`` sequences at 32 tokens, each model in turn, step by step:
    median ms of each and the median per-pair ratio (oneDNN ÷ kernel)."""
    from inprocess import prefilled_step, steps_in_turn

    times = steps_in_turn(
        {name: prefilled_step(model, batch, 32) for name, model in models.items()}, count
    )
    ratios = [a / b for a, b in zip(times["oneDNN"], times["kernel"], strict=True)]
    return {
        "oneDNN": statistics.median(times["oneDNN"]),
        "kernel": statistics.median(times["kernel"]),
        "ratio": statistics.median(ratios),
    }


def main(argv: list[str] | None = None) -> int:
    from run import machine_facts

    from galactica_ext.checkpoints import build_random_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, torch.get_num_threads()])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--skip-steps", action="store_true", help="products only")
    args = parser.parse_args(argv)
    for key, value in machine_facts().items():
        print(f"{key}: {value}")
    for name in ("NUMBA_CPU_NAME", "ONEDNN_MAX_CPU_ISA"):
        if os.environ.get(name):
            print(f"{name}: {os.environ[name]}")
    threads = list(dict.fromkeys(args.threads))
    print(f"\n## Products: ms for the rows through every matrix (median of {args.rounds})\n")
    print(
        "| products | rows | threads | oneDNN | kernel | oneDNN ÷ kernel | GB/s oneDNN / kernel |"
    )
    print("|---|---|---|---|---|---|---|")
    with torch.inference_mode():
        for part in ("layers", "output projection"):
            for rows in (1, 2, 3):
                for count in threads:
                    torch.set_num_threads(count)
                    r = products(matrices(part), rows, args.rounds)
                    mb = r["bytes"] / 1e6
                    print(
                        f"| {part} | {rows} | {count} | {r['oneDNN']:.2f} | {r['kernel']:.2f} | "
                        f"{r['oneDNN'] / r['kernel']:.2f} | "
                        f"{mb / r['oneDNN']:.1f} / {mb / r['kernel']:.1f} |",
                        flush=True,
                    )
        if args.skip_steps:
            return 0
        cache = Path("~/.cache/galactica-ext/bench-125m").expanduser()  # run.py's
        checkpoint = build_random_checkpoint(cache, "125m")
        models = {"oneDNN": load(checkpoint, False), "kernel": load(checkpoint, True)}
        print("\n## Decoding steps, galactica-125m shape, float32, 32 tokens of context\n")
        print("| sequences | threads | oneDNN ms | kernel ms | oneDNN ÷ kernel (per pair) |")
        print("|---|---|---|---|---|")
        for batch in (1, 2, 3):
            for count in threads:
                torch.set_num_threads(count)
                r = steps(models, batch)
                print(
                    f"| {batch} | {count} | {r['oneDNN']:.2f} | {r['kernel']:.2f} | "
                    f"{r['ratio']:.2f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
