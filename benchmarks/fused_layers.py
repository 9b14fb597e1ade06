"""Decoding steps with the fused layers against the same steps through the modules.

    python benchmarks/fused_layers.py [--dtype float32 bfloat16] [--shape 125m|1.3b]
                                      [--threads N ...] [--steps 40]

A step of as many sequences as the few-row kernels take runs each decoder layer as one numba
call (engine/fused_layers.py) instead of the layer's modules (norms, products, cache write and
attention, residual adds). This loads the benchmark's random-weight checkpoint (as ``run.py``
builds it) in each dtype as the agent loads it, and decodes from the same prompt two ways, one
step each in turn, the order swapped every pair (``inprocess.steps_in_turn``): the engine's
step, and the same step with its fused layers set aside. For 1 and 2 sequences (4 too where
the kernels take them: bfloat16 without bfloat16 arithmetic) at 32 and 1,000 tokens of
context and each thread count: the median ms of each, and the median (and range) of the
per-pair ratios, modules ÷ fused. Prints the machine first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

CASES = [(1, 32), (1, 1000), (2, 32), (2, 1000), (4, 32), (4, 1000)]


def compare(model, batch: int, context: int, steps: int) -> dict[str, float]:
    """Steps with and without the fused layers, in turn: medians and per-pair ratios."""
    from inprocess import prefilled_step, steps_in_turn

    fused = prefilled_step(model, batch, context)
    modules = prefilled_step(model, batch, context)
    if fused[0].fused is None:
        raise RuntimeError("the fused layers do not apply to this model here")
    modules[0].fused = None
    times = steps_in_turn({"fused": fused, "modules": modules}, steps)
    ratios = [m / f for f, m in zip(times["fused"], times["modules"], strict=True)]
    return {
        "fused": statistics.median(times["fused"]),
        "modules": statistics.median(times["modules"]),
        "ratio": statistics.median(ratios),
        "low": min(ratios),
        "high": max(ratios),
    }


def main(argv: list[str] | None = None) -> int:
    from products import load
    from run import machine_facts

    from galactica_ext.checkpoints import build_random_checkpoint
    from galactica_ext.engine.decode_step import DecodeStep

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, torch.get_num_threads()])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--shape", choices=("125m", "1.3b"), default="125m")
    parser.add_argument(
        "--dtype", nargs="+", choices=("float32", "bfloat16"), default=["float32", "bfloat16"]
    )
    args = parser.parse_args(argv)
    for key, value in machine_facts().items():
        print(f"{key}: {value}")
    cache = Path(f"~/.cache/galactica-ext/bench-{args.shape}").expanduser()  # run.py's
    checkpoint = build_random_checkpoint(cache, args.shape)
    for dtype in args.dtype:
        model = load(checkpoint, True, dtype)
        fused = DecodeStep.build(model).fused
        if fused is None:
            print(f"\n{dtype}: the fused layers do not apply here (no few-row kernels)")
            continue
        print(
            f"\n## {dtype} decoding steps, galactica-{args.shape} shape, ms "
            f"(median of {args.steps})\n"
        )
        print("| sequences | context | threads | modules | fused | modules ÷ fused (range) |")
        print("|---|---|---|---|---|---|")
        for batch, context in [(b, c) for b, c in CASES if b <= fused.rows]:
            for threads in dict.fromkeys(args.threads):
                torch.set_num_threads(threads)
                r = compare(model, batch, context, args.steps)
                print(
                    f"| {batch} | {context} | {threads} | {r['modules']:.2f} | "
                    f"{r['fused']:.2f} | {r['ratio']:.2f} ({r['low']:.2f}-{r['high']:.2f}) |",
                    flush=True,
                )
        del model
    return 0


if __name__ == "__main__":
    sys.exit(main())
