"""The engine's CPU weight paths side by side: decode speed, logits error, greedy agreement, RSS.

    python benchmarks/cpu_paths.py [--shape 125m|1.3b] [--threads N] [--rounds 3] [--rss] [--ct2]

Loads one random-weight GALACTICA checkpoint of the shape as the engine does (float32 and
bfloat16 prepacked, int8 with each kernel), then, in the same process and interleaved
(the order rotates every round):

- decode tokens/s of a plain greedy loop over the model (one sequence, a 26-token prompt,
  the KV cache of transformers), ``--threads`` threads (default 1);
- the logits' max abs error of every variant against float32, teacher-forced on the same
  64 tokens, and how many greedy tokens each variant shares with bfloat16 before diverging;
- with ``--ct2``: CTranslate2's float32 and int8 decoding in the same rounds (its tokens/s
  between the first and the last token, as ours: prefill excluded);
- with ``--rss``: the peak RSS of loading each variant in a fresh subprocess (ru_maxrss),
  against the weight bytes, with and without the process's memory before loading.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

VARIANTS = {
    "float32": {"dtype": "float32"},
    "bfloat16": {"dtype": "bfloat16"},
    "bfloat16 unfused": {"dtype": "bfloat16", "fuse": False},
    "int8 dynamic": {"dtype": "bfloat16", "quantize": "8bit", "int8_kernel": "dynamic"},
    "int8 weight-only": {"dtype": "bfloat16", "quantize": "8bit", "int8_kernel": "weight-only"},
}
#: the clock decode() reads: the wall clock, or with --cpu-time this thread's CPU time
CLOCK = [time.perf_counter]
PROMPT = (
    "The Transformer is a neural network architecture based on attention. In this paper "
    "we study how its loss scales with the number of parameters and"
)


def load(checkpoint: Path, variant: str):
    from galactica_ext.engine.loading import LoadOptions, load_model

    return load_model(str(checkpoint), LoadOptions(device="cpu", **VARIANTS[variant]))


def decode(model, prompt: list[int], tokens: int) -> tuple[list[int], float]:
    """Greedy tokens and tokens/s of the decoding steps (prefill excluded); with ``--cpu-time``
    (:data:`CLOCK`), per second of this thread's CPU time, which other jobs on a loaded machine
    inflate less than the wall clock (right for one thread: torch computes on the caller's)."""
    from transformers import DynamicCache

    with torch.inference_mode():
        cache = DynamicCache()
        ids = torch.tensor([prompt])
        out = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        made = [int(token)]
        start = CLOCK[0]()
        for i in range(tokens - 1):
            position = torch.tensor([[len(prompt) + i]])
            out = model(
                input_ids=token,
                position_ids=position,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            token = out.logits[:, -1].argmax(-1, keepdim=True)
            made.append(int(token))
        return made, (tokens - 1) / (CLOCK[0]() - start)


def logits(model, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[0].float()


def rss_of(checkpoint: Path, variant: str) -> dict:
    """Load one variant in a fresh interpreter; its ru_maxrss before and after loading."""
    code = f"""
import json, resource, sys
sys.path.insert(0, {str(HERE.parent)!r})
import transformers.models.opt.modeling_opt
from galactica_ext.engine.loading import LoadOptions, load_model
from galactica_ext.engine.tokenizer import load_tokenizer
load_tokenizer({str(checkpoint)!r})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
lm = load_model({str(checkpoint)!r}, LoadOptions(device="cpu", **{VARIANTS[variant]!r}))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"before": before, "peak": after, "weights": lm.weight_bytes}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="125m", choices=["tiny", "125m", "1.3b"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--rss", action="store_true", help="peak RSS of loading, subprocesses")
    parser.add_argument(
        "--cpu-time", action="store_true", help="our decoding per CPU second (one thread only)"
    )
    parser.add_argument(
        "--ct2", action="store_true", help="CTranslate2 float32 and int8 in the decode rounds too"
    )
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.cpu_time:
        if args.threads != 1 or args.ct2:
            parser.error("--cpu-time needs --threads 1 and no --ct2 (other threads' time is lost)")
        CLOCK[0] = time.thread_time
    from galactica_ext.checkpoints import build_random_checkpoint

    cache = args.cache_dir or Path(f"~/.cache/galactica-ext/bench-{args.shape}").expanduser()
    checkpoint = build_random_checkpoint(cache, args.shape)
    names = args.variants.split(",")
    print(f"checkpoint {checkpoint}; threads {args.threads}; load average {_load()}", flush=True)
    if args.rss:
        for name in names:
            r = rss_of(checkpoint, name)
            w = r["weights"]
            print(
                f"RSS {name}: weights {w / 2**20:.0f} MiB, peak {r['peak'] / 2**20:.0f} MiB "
                f"= {r['peak'] / w:.2f}x; above the process before loading "
                f"({r['before'] / 2**20:.0f} MiB): {(r['peak'] - r['before']) / w:.2f}x",
                flush=True,
            )
    torch.set_num_threads(args.threads)
    models = {name: load(checkpoint, name) for name in names}
    tokenizer = next(iter(models.values())).tokenizer
    prompt = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    timed = {name: (lambda n, m=lm.model: decode(m, prompt, n)[1]) for name, lm in models.items()}
    if args.ct2:
        import ct2

        converted = ct2.convert(checkpoint, cache.parent / f"ct2-{args.shape}", tokenizer)
        for kind in ("float32", "int8"):
            runner = ct2.CT2(converted, kind, args.threads, tokenizer)
            timed[f"ct2 {kind}"] = lambda n, r=runner: r.rate(prompt, n).decode
    reference = "bfloat16" if "bfloat16" in models else names[0]
    greedy, _ = decode(models[reference].model, prompt, 64)
    forced = prompt + greedy
    truth_name = "float32" if "float32" in models else reference
    truth = logits(models[truth_name].model, forced)
    for name, lm in models.items():
        made, _ = decode(lm.model, prompt, 64)
        same = next(
            (i for i, (a, b) in enumerate(zip(made, greedy, strict=False)) if a != b), len(made)
        )
        got = logits(lm.model, forced)
        err = (got - truth).abs().max().item()
        agree = (got.argmax(-1) == truth.argmax(-1)).float().mean().item()
        print(
            f"{name}: logits max abs error vs {truth_name} {err:.4f} (logits up to "
            f"{truth.abs().max().item():.2f}); teacher-forced argmax equal to {truth_name}'s at "
            f"{100 * agree:.0f}% of {len(forced)} positions; greedy tokens equal to "
            f"{reference}'s for the first {same} of 64",
            flush=True,
        )
    names = list(timed)
    speeds: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm-up
        timed[name](4)
    for rnd in range(args.rounds):
        order = names[rnd % len(names) :] + names[: rnd % len(names)]
        for name in order:
            speeds[name].append(timed[name](args.tokens))
        print(f"round {rnd + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in speeds.items()))
    base = statistics.median(speeds[reference])
    for name, xs in speeds.items():
        med = statistics.median(xs)
        print(
            f"decode {name}: {med:.1f} tok/s (min-max {min(xs):.1f}-{max(xs):.1f}), "
            f"{med / base:.2f}x {reference}"
        )
    print(f"load average at the end {_load()}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(f"this process: peak RSS {peak:.0f} MiB")
    return 0


def _load() -> str:
    import os

    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
