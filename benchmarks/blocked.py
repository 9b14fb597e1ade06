"""bfloat16 products: the blocked AVX-512 BF16 kernel against oneDNN's packed product.

    python benchmarks/blocked.py [--shape 125m|1.3b] [--threads N ...] [--rounds 9]
                                 [--rows 1 2 3 4 8 16 64 256] [--skip-engine]

Why the engine has its own C kernel for bfloat16 products (``engine/blocked.py``): this prints
the machine, then

1. rows through the layer matrices in turn (fused q/k/v, out, fc1, fc2; galactica-125m: its 12
   layers, 170 MB; galactica-1.3b: 4 of its 24 layers, 403 MB: the weights come from memory as
   in a step), oneDNN's packed product (as ``cpu.PackedLinear`` packed them before) against the
   kernel on the blocked weight, interleaved, the order alternating every round: median ms,
   GB/s and the ratio, for each row count (1-16: decoding steps, beams, clients; 64 and 256: a
   prompt's chunks) and thread count;
2. (unless ``--skip-engine``) the engine's decoding steps at 32 tokens of context, the model
   loaded as the agent loads it against the same load with ``GALACTICA_BLOCKED_PRODUCT=torch``,
   step by step in turn (``inprocess.steps_in_turn``), for 1, 3 and 4 sequences, and a
   1,000-token prompt's prefill (the engine's chunks), in turn: medians and per-pair ratios.

Needs a CPU with AVX-512 BF16 and a C compiler (the kernel's own requirements); elsewhere it
says why and stops.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

#: width and layers measured per shape (1.3b: 4 of its 24 layers)
SHAPES = {"125m": (768, 12), "1.3b": (2048, 4)}


def matrices(shape: str) -> list[tuple[int, int]]:
    """``[features, size]`` of the layer matrices, layer by layer."""
    width, layers = SHAPES[shape]
    return [(3 * width, width), (width, width), (4 * width, width), (width, 4 * width)] * layers


def products(shape: str, rows_list: list[int], threads: list[int], rounds: int) -> None:
    """Section 1."""
    from inprocess import interleaved_times

    from galactica_ext.engine.blocked import BlockedWeight

    seeded = torch.Generator().manual_seed(0)
    weights = [
        (torch.randn(n, k, generator=seeded) * 0.02).to(torch.bfloat16) for n, k in matrices(shape)
    ]
    nbytes = sum(w.nbytes for w in weights)
    packed = [torch.ops.mkldnn._reorder_linear_weight(w, 1) for w in weights]
    blocked = [BlockedWeight(w, None) for w in weights]
    del weights
    print(f"\n## Products through the layer matrices ({nbytes / 1e6:.0f} MB), ms per pass\n")
    print("| rows | threads | oneDNN packed | blocked kernel | GB/s (oneDNN / kernel) |"
          " oneDNN ÷ kernel (per round) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for rows in rows_list:
        xs = [torch.randn(rows, b.size, generator=seeded).to(torch.bfloat16) for b in blocked]
        for count in threads:
            torch.set_num_threads(count)

            def onednn(xs=xs) -> None:
                for x, p in zip(xs, packed, strict=True):
                    torch.ops.mkldnn._linear_pointwise(x, p, None, "none", [], "none")

            def kernel(xs=xs) -> None:
                for x, b in zip(xs, blocked, strict=True):
                    b(x)

            t = interleaved_times({"oneDNN": onednn, "kernel": kernel}, rounds)
            ratios = [a / b for a, b in zip(t["oneDNN"], t["kernel"], strict=True)]
            a, b = statistics.median(t["oneDNN"]), statistics.median(t["kernel"])
            print(
                f"| {rows} | {count} | {a:.2f} | {b:.2f} | {nbytes / a / 1e6:.1f} / "
                f"{nbytes / b / 1e6:.1f} | {statistics.median(ratios):.2f} "
                f"({min(ratios):.2f}-{max(ratios):.2f}) |",
                flush=True,
            )


def load(checkpoint: Path, kernel: bool):
    """The bfloat16 model as the agent loads it, with or without the blocked kernel."""
    import contextlib

    from inprocess import kernel_off

    from galactica_ext.engine import blocked
    from galactica_ext.engine.loading import LoadOptions, load_model

    options = LoadOptions(dtype="bfloat16", device="cpu")
    with contextlib.nullcontext() if kernel else kernel_off(blocked):
        return load_model(str(checkpoint), options).model


#: a 1,000-token prompt (token ids), as ``inprocess`` builds its prompts
PROMPT = [100 + i % 40000 for i in range(1000)]


def prompt(model) -> None:
    """:data:`PROMPT`'s prefill, in the engine's chunks."""
    from galactica_ext.engine.prefill import prefill

    with torch.inference_mode():
        prefill(model, torch.device("cpu"), PROMPT, None, 0)


def engine(shape: str, threads: list[int], steps: int, rounds: int) -> None:
    """Section 2."""
    from inprocess import interleaved_times, prefilled_step, steps_in_turn

    from galactica_ext.checkpoints import build_random_checkpoint

    cache = Path(f"~/.cache/galactica-ext/bench-{shape}").expanduser()  # run.py's
    checkpoint = build_random_checkpoint(cache, shape)
    models = {"oneDNN": load(checkpoint, False), "kernel": load(checkpoint, True)}
    print(f"\n## The engine, galactica-{shape} shape, bfloat16\n")
    print("Decoding steps at 32 tokens of context, ms per step (median), one step each in turn;")
    print("a prompt: its prefill (the engine's chunks), ms, in turn.\n")
    print("| work | threads | oneDNN | kernel | oneDNN ÷ kernel (per pair) |")
    print("|---|---|---|---|---|")
    for count in threads:
        torch.set_num_threads(count)
        for batch in (1, 3, 4):
            states = {name: prefilled_step(model, batch, 32) for name, model in models.items()}
            t = steps_in_turn(states, steps)
            ratios = [a / b for a, b in zip(t["oneDNN"], t["kernel"], strict=True)]
            print(
                f"| {batch} sequence{'s' * (batch > 1)} | {count} | "
                f"{statistics.median(t['oneDNN']):.2f} | {statistics.median(t['kernel']):.2f} | "
                f"{statistics.median(ratios):.2f} |",
                flush=True,
            )

        t = interleaved_times({name: (lambda m=m: prompt(m)) for name, m in models.items()}, rounds)
        ratios = [a / b for a, b in zip(t["oneDNN"], t["kernel"], strict=True)]
        print(
            f"| 1,000-token prompt | {count} | {statistics.median(t['oneDNN']):.0f} | "
            f"{statistics.median(t['kernel']):.0f} | {statistics.median(ratios):.2f} |",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    from run import machine_facts

    from galactica_ext.engine import blocked

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="125m")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, torch.get_num_threads()])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 2, 3, 4, 8, 16, 64, 256])
    parser.add_argument("--skip-engine", action="store_true")
    args = parser.parse_args(argv)
    print(f"# bfloat16 products: blocked kernel against oneDNN, galactica-{args.shape} shape\n")
    for key, value in machine_facts().items():
        print(f"- {key}: {value}")
    if blocked.kernel() is None:
        print("\nThe blocked kernel does not run here (the log says why).")
        return 1
    products(args.shape, args.rows, args.threads, args.rounds)
    if not args.skip_engine:
        engine(args.shape, args.threads, args.steps, max(3, args.rounds // 3))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
