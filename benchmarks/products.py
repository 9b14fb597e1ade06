"""Decoding products: oneDNN's packed product against ``few_rows``' numba kernels.

    python benchmarks/products.py [--dtype float32 bfloat16 int8] [--shape 125m|1.3b]
                                  [--threads N ...] [--rounds 9] [--skip-steps] [--widened]

float32 is what the agent runs on CPUs without AVX-512 BF16 (most laptops), bfloat16 where
the CPU has it, with galactica-125m the default model. A decoding step multiplies a row per
sequence by every weight matrix. This prints the machine, then, interleaved (the order
alternating every round), for each dtype:

1. rows through the layer matrices in turn (fused q/k/v, out, fc1, fc2; galactica-125m: its
   12 layers, 170 MB in bfloat16, 340 MB in float32; galactica-1.3b: 4 of its 24 layers,
   400 / 800 MB: the weights come from memory as in a step) and through the output
   projection (50,000 × width), oneDNN packed (as ``cpu.PackedLinear`` packs them) against
   the kernel on the plain weight: ms, GB/s, and the ratio (the engine gives the kernels up to
   ``few_rows.row_limit`` rows, where they were measured faster, and one row past that is
   measured too);
2. the engine's decoding steps on the galactica-125m shape (random weights, cached as
   ``run.py`` builds them) for 1, 2 and 3 sequences, the model loaded as the agent loads it
   against the same load with ``GALACTICA_FEW_ROW_PRODUCT=torch``, step by step in turn:
   ms per step and the median of the per-pair ratios.

``--dtype int8``: int8 weights (``--quantize 8bit``) and the rows of the model's dtype here
(:func:`int8_rows`: bfloat16 where oneDNN runs it natively, else float32, as on a laptop; with
``--avx2`` too), torch's dynamic int8 product in the oneDNN column (fbgemm) against
``few_rows.Int8Rows`` on the plain int8 copy;
the steps load the model with ``--quantize 8bit``.

``--widened``: bfloat16 weights on a CPU without bfloat16 arithmetic (``widened.WidenedLinear``:
the kernel up to ``few_rows.WIDENED_MAX_ROWS`` rows, a float32 copy of the weight past it; both
measured at each row count, which is how the limit was chosen) against torch's bfloat16
product on the same weights and torch's float32 product on float32 weights, for 1 to 256 rows
(256: a prompt chunk), through the same matrices.

``--avx2``: what a laptop without AVX-512 runs: the script runs itself again with numba and
oneDNN emitting AVX2 code (:data:`AVX2_ENV`, and a fresh ``NUMBA_CACHE_DIR``); the memory stays
this machine's. ``NUMBA_CPU_NAME=haswell`` alone is not enough: numba still hands the host's
features (AVX-512 among them) to LLVM, which then emits AVX-512 code anyway; the report says
which code numba emitted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

VOCABULARY = 50000
#: width and layers measured per shape
SHAPES = {"125m": (768, 12), "1.3b": (2048, 4)}


#: ``--avx2``: numba and oneDNN emit AVX2 code, as on a CPU without AVX-512
AVX2_ENV = {
    "NUMBA_CPU_NAME": "haswell",
    "NUMBA_CPU_FEATURES": "+avx2,+fma,+f16c",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}


def _again_as_avx2(argv: list[str]) -> None:
    """This script run again with :data:`AVX2_ENV` and a fresh numba cache (never returns)."""
    env = os.environ | AVX2_ENV | {"NUMBA_CACHE_DIR": tempfile.mkdtemp(prefix="numba-avx2-")}
    args = [arg for arg in argv if arg != "--avx2"]
    os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *args], env)


def numba_code() -> str:
    """Which vector code numba emits here: its target CPU and whether AVX-512 is on."""
    from numba.core.registry import cpu_target

    codegen = cpu_target.target_context.codegen()
    features = codegen._get_host_cpu_features().split(",")
    wide = "AVX-512" if "+avx512f" in features else "AVX2" if "+avx2" in features else "SSE"
    return f"{codegen._get_host_cpu_name()}, {wide}"


def matrices(part: str, shape: str = "125m") -> list[tuple[int, int]]:
    """(in, out) of each product, in the order a step runs them."""
    width, layers = SHAPES[shape]
    if part == "output projection":
        return [(width, VOCABULARY)]
    block = [(width, 3 * width), (width, width), (width, 4 * width), (4 * width, width)]
    return block * layers


def products(
    shapes: list[tuple[int, int]], rows: int, rounds: int, dtype: torch.dtype = torch.float32
) -> dict[str, float]:
    """Median ms of ``rows`` rows through every matrix of ``shapes``, each path; their bytes.
    int8: rows of :func:`int8_rows` through int8 weights, torch's dynamic product ("oneDNN")
    against the kernel on the plain int8 copy."""
    from galactica_ext.engine import few_rows
    from galactica_ext.engine.cpu import PACK_HINTS
    from galactica_ext.engine.int8 import Int8Linear

    seeded = torch.Generator().manual_seed(0)
    layers = []
    for size, features in shapes:
        weight = torch.randn(features, size, generator=seeded) * 0.02
        bias = torch.randn(features, generator=seeded) * 0.02
        if dtype == torch.int8:
            linear = torch.nn.Linear(size, features, device="meta")
            linear.weight = torch.nn.Parameter(weight.to(int8_rows()), requires_grad=False)
            linear.bias = torch.nn.Parameter(bias.to(int8_rows()), requires_grad=False)
            int8 = Int8Linear(linear, "dynamic", tied=False, few_rows_too=True)
            layers.append((size, features, int8.forward, int8.few_rows))
            int8.few_rows = None  # its forward: the dynamic product alone
            continue
        weight, bias = weight.to(dtype), bias.to(dtype)
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, PACK_HINTS[dtype])

        def onednn(x, packed=packed, bias=bias):
            return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "none")

        layers.append((size, features, onednn, few_rows.FewRows(weight, bias)))
    row_dtype = int8_rows() if dtype == torch.int8 else dtype
    inputs = {size: torch.randn(rows, size, generator=seeded).to(row_dtype) for size, _ in shapes}

    def onednn() -> None:
        for size, _, product, _ in layers:
            product(inputs[size])

    def kernel() -> None:
        for size, _, _, product in layers:
            product(inputs[size])

    for *_, product in layers:  # measured past the engine's limit too: how it was chosen
        product.max_rows = max(rows, product.max_rows)
    bytes_per_weight = 1 if dtype == torch.int8 else dtype.itemsize
    return _interleaved({"oneDNN": onednn, "kernel": kernel}, rounds) | {
        "bytes": sum(size * features * bytes_per_weight for size, features, *_ in layers)
    }


def widened_products(shapes: list[tuple[int, int]], rows: int, rounds: int) -> dict[str, float]:
    """Median ms of ``rows`` rows through every matrix of ``shapes``: torch's bfloat16 product;
    :class:`WidenedLinear`'s ways on the same weights: the kernel (up to 32 rows), the float32
    copy of the weight through oneDNN's product (where it runs) and through torch's; torch's
    float32 product on float32 weights made beforehand."""
    from galactica_ext.engine.widened import WidenedLinear, onednn_float32

    seeded = torch.Generator().manual_seed(0)
    layers = []
    for size, features in shapes:
        linear = torch.nn.Linear(size, features, dtype=torch.bfloat16)
        with torch.no_grad():
            linear.weight.copy_(torch.randn(features, size, generator=seeded) * 0.02)
        kernel, copy, torch_copy = (WidenedLinear(linear) for _ in range(3))
        kernel.few_rows.max_rows = rows
        copy.few_rows.max_rows = torch_copy.few_rows.max_rows = 0
        torch_copy.onednn = False
        layers.append(
            (linear, kernel, copy, torch_copy, linear.weight.float(), linear.bias.float())
        )
    inputs = {size: torch.randn(rows, size, generator=seeded).bfloat16() for size, _ in shapes}
    wide = {size: x.float() for size, x in inputs.items()}

    def through(index: int):
        def run() -> None:
            for layer in layers:
                layer[index](inputs[layer[0].in_features])

        return run

    def float32() -> None:
        for linear, *_, weight, bias in layers:
            torch.nn.functional.linear(wide[linear.in_features], weight, bias)

    paths = {
        "bfloat16": through(0),
        "kernel": through(1),
        "copy": through(2),
        "torch copy": through(3),
        "float32": float32,
    }
    if rows > 32:
        del paths["kernel"]
    if rows <= 32 or not onednn_float32():
        del paths["torch copy"]  # the same path as "copy" without oneDNN
    return _interleaved(paths, rounds) | {"bytes": sum(x[0].weight.nbytes for x in layers)}


def widened_main(args: argparse.Namespace, threads: list[int]) -> int:
    """``--widened``: the table of :func:`widened_products`."""
    from galactica_ext.engine import few_rows

    print(
        f"\n## bfloat16 weights, float32 products (widened), galactica-{args.shape}'s matrices: "
        f"ms for the rows through every matrix (median of {args.rounds}). The engine takes the "
        f"kernel up to {few_rows.WIDENED_MAX_ROWS} rows, the float32 copy past that (through "
        f"oneDNN's product where it runs; torch's product: the column after it)\n"
    )
    print(
        "| products | rows | threads | torch bfloat16 | kernel | float32 copy | float32 copy, "
        "torch's product | torch float32 | bfloat16 ÷ engine | float32 ÷ engine |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    with torch.inference_mode():
        for part in ("layers", "output projection"):
            for rows in (1, 2, 4, 8, 16, 24, 32, 256):
                for count in threads:
                    torch.set_num_threads(count)
                    r = widened_products(matrices(part, args.shape), rows, args.rounds)
                    engine = r["kernel"] if rows <= few_rows.WIDENED_MAX_ROWS else r["copy"]
                    print(
                        f"| {part} | {rows} | {count} | {r['bfloat16']:.2f} | "
                        f"{r.get('kernel', float('nan')):.2f} | {r['copy']:.2f} | "
                        f"{r.get('torch copy', float('nan')):.2f} | "
                        f"{r['float32']:.2f} | {r['bfloat16'] / engine:.2f} | "
                        f"{r['float32'] / engine:.2f} |",
                        flush=True,
                    )
    return 0


def int8_rows() -> torch.dtype:
    """The rows an int8 model multiplies here: bfloat16 where oneDNN runs it natively (the
    model's dtype then), else float32."""
    from galactica_ext.engine.cpu import can_pack

    return torch.bfloat16 if can_pack(torch.bfloat16, torch.device("cpu")) else torch.float32


def label(dtype: str) -> str:
    """A dtype as the report names it (int8: with its rows' dtype)."""
    if dtype != "int8":
        return dtype
    return f"int8 ({str(int8_rows()).removeprefix('torch.')} rows)"


def _interleaved(paths: dict, rounds: int) -> dict[str, float]:
    """Median ms of each of ``paths``, run in turn, the order alternating every round."""
    from inprocess import interleaved_times

    times = interleaved_times(paths, rounds)
    return {name: statistics.median(t) for name, t in times.items()}


def load(checkpoint: Path, kernel: bool, dtype: str = "float32"):
    """The model as the agent loads it in ``dtype`` (int8: :func:`int8_rows` with ``--quantize
    8bit``), with or without the kernel."""
    from inprocess import kernel_off

    from galactica_ext.engine import few_rows
    from galactica_ext.engine.loading import LoadOptions, load_model

    options = LoadOptions(dtype=dtype, device="cpu")
    if dtype == "int8":
        rows = str(int8_rows()).removeprefix("torch.")
        options = LoadOptions(dtype=rows, device="cpu", quantize="8bit")
    with contextlib.nullcontext() if kernel else kernel_off(few_rows):
        return load_model(str(checkpoint), options).model


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
    from galactica_ext.engine import few_rows
    from galactica_ext.engine.cpu import can_pack

    argv = sys.argv[1:] if argv is None else argv
    if "--avx2" in argv and os.environ.get("NUMBA_CPU_FEATURES") != AVX2_ENV["NUMBA_CPU_FEATURES"]:
        _again_as_avx2(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, torch.get_num_threads()])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--avx2", action="store_true", help="AVX2 code (run again as such)")
    parser.add_argument(
        "--dtype",
        nargs="+",
        choices=("float32", "bfloat16", "int8"),
        default=["float32", "bfloat16"],
        help="int8: int8 weights (bfloat16 or float32 rows), torch's dynamic product as oneDNN's",
    )
    parser.add_argument("--shape", choices=tuple(SHAPES), default="125m", help="matrices")
    parser.add_argument("--skip-steps", action="store_true", help="products only")
    parser.add_argument(
        "--widened", action="store_true", help="bfloat16 weights, float32 products (no AVX-512)"
    )
    args = parser.parse_args(argv)
    for key, value in machine_facts().items():
        print(f"{key}: {value}")
    for name in AVX2_ENV:
        if os.environ.get(name):
            print(f"{name}: {os.environ[name]}")
    print(f"numba emits: {numba_code()}")
    threads = list(dict.fromkeys(args.threads))
    if args.widened:
        return widened_main(args, threads)
    dtypes = [
        d for d in args.dtype if d == "int8" or can_pack(getattr(torch, d), torch.device("cpu"))
    ]
    if dtypes != args.dtype:
        print("bfloat16: oneDNN does not pack it on this CPU (no AVX-512 BF16); not measured")
    with torch.inference_mode():
        for dtype in dtypes:
            print(
                f"\n## {label(dtype)} products, galactica-{args.shape}'s matrices: ms for the rows "
                f"through every matrix (median of {args.rounds})\n"
            )
            print(
                "| products | rows | threads | oneDNN | kernel | oneDNN ÷ kernel "
                "| GB/s oneDNN / kernel |"
            )
            print("|---|---|---|---|---|---|---|")
            # one row past the kernel's limit too
            most = few_rows.row_limit(getattr(torch, dtype)) + 1
            for part in ("layers", "output projection"):
                shapes = matrices(part, args.shape)
                for rows in range(1, most + 1):
                    for count in threads:
                        torch.set_num_threads(count)
                        r = products(shapes, rows, args.rounds, getattr(torch, dtype))
                        mb = r["bytes"] / 1e6
                        print(
                            f"| {part} | {rows} | {count} | {r['oneDNN']:.2f} | "
                            f"{r['kernel']:.2f} | {r['oneDNN'] / r['kernel']:.2f} | "
                            f"{mb / r['oneDNN']:.1f} / {mb / r['kernel']:.1f} |",
                            flush=True,
                        )
            if args.skip_steps:
                continue
            cache = Path("~/.cache/galactica-ext/bench-125m").expanduser()  # run.py's
            checkpoint = build_random_checkpoint(cache, "125m")
            models = {"oneDNN": load(checkpoint, False, dtype)}
            models["kernel"] = load(checkpoint, True, dtype)
            print(
                f"\n## Decoding steps, galactica-125m shape, {label(dtype)}, 32 tokens of context\n"
            )
            print("| sequences | threads | oneDNN ms | kernel ms | oneDNN ÷ kernel (per pair) |")
            print("|---|---|---|---|---|")
            for batch in range(1, most + 1):  # one past the limit, as above
                for count in threads:
                    torch.set_num_threads(count)
                    r = steps(models, batch)
                    print(
                        f"| {batch} | {count} | {r['oneDNN']:.2f} | {r['kernel']:.2f} | "
                        f"{r['ratio']:.2f} |",
                        flush=True,
                    )
            del models
    return 0


if __name__ == "__main__":
    sys.exit(main())
