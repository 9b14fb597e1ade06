"""``benchmarks/run.py``'s two-document editor trace and citation beam search, run alone against
the real agent on the tiny checkpoint (two rounds; no figure is asserted, only what was
measured and that the report shows it), and the trace's prompts with the real tokenizer."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from galactica_ext.engine.cpu import can_pack

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import editor_trace  # noqa: E402
import inprocess  # noqa: E402
import run  # noqa: E402
import workloads  # noqa: E402
from report import Report, Settings  # noqa: E402
from sse import Server  # noqa: E402

SETTINGS = Settings(
    decode_tokens=8,
    decode_reps=1,
    traces=1,
    pauses=6,
    concurrent_tokens=8,
    concurrent_reps=1,
    cancel_reps=1,
    beam_reps=2,
    search_reps=2,
    search_beams=4,
    search_tokens=1500,
)


def test_one_document_trace_grows_one_prompt(tokenizer: Any) -> None:
    prompts = editor_trace.trace(tokenizer, 0, pauses=5)
    first = tokenizer(prompts[0], add_special_tokens=False)["input_ids"]
    assert abs(len(first) - 1000) <= 2
    for before, after in itertools.pairwise(prompts):
        assert after.startswith(before) and 2 <= len(after) - len(before) <= 7


def test_two_document_trace_alternates_and_grows_each(tokenizer: Any) -> None:
    prompts = editor_trace.trace(tokenizer, 500, pauses=7, documents=2)
    a, b = prompts[0::2], prompts[1::2]
    assert len(a) == 4 and len(b) == 3
    assert a[0][:200] != b[0][:200]  # two different documents
    for doc in (a, b):
        assert abs(len(tokenizer(doc[0], add_special_tokens=False)["input_ids"]) - 1000) <= 2
        for before, after in itertools.pairwise(doc):
            assert after.startswith(before) and 2 <= len(after) - len(before) <= 7
    # the first document is the one-document trace's document, typed into alike
    assert a == editor_trace.trace(tokenizer, 500, pauses=4)


def test_citation_request_is_the_products_with_a_fixed_length() -> None:
    body = workloads.citation_beams(run.CITE_TEXT, 3, 64)
    assert body["prompt"].endswith(" [START_REF]")
    assert body["use_beam_search"] is True and body["n"] == 3 and body["temperature"] == 0
    assert body["max_tokens"] == body["min_tokens"] == 64 and body["ignore_eos"] is True
    assert "stop" not in body and body["stream"] is False


def test_sections_run_against_a_real_agent(agent_server, tokenizer: Any) -> None:
    server = Server(agent_server.url, agent_server.token)
    servers = {"agent bfloat16": server}
    report = Report(SETTINGS, "test")
    run.two_document_trace(report, SETTINGS, servers, tokenizer)
    trace = report.trace2["agent"]
    assert len(trace.cold) == 2 and len(trace.warm) == SETTINGS.pauses - 2
    assert all(t > 0 for t in trace.cold + trace.warm)
    run.citation_beam_search(report, SETTINGS, servers)
    assert len(report.beam_seconds["agent"]) == SETTINGS.beam_reps
    text = report.markdown()
    assert "| agent, two documents alternating |" in text
    assert "editor trace TTFT, two documents alternating ÷ one document (agent)" in text
    assert "## 8. A citation by beam search (3 beams × 64 tokens, 2 rounds)" in text
    assert "| a 3-beam, 64-token citation, agent ÷ vLLM-cpu beam search | n/a | <= 0.7 |" in text
    assert "| decode step at 1,000 tokens of context ÷ at 32 | n/a | <= 1.15 |" in text
    run.short_request_beside_search(report, SETTINGS, servers, tokenizer)
    beside = report.beside_search
    assert beside is not None and len(beside.alone) == len(beside.during) == 2
    assert all(t > 0 for t in beside.alone + beside.during)
    assert beside.search_gone  # hanging up cancelled the search
    text = report.markdown()
    assert "## 9. A short request beside a 4-beam search (2 requests each)" in text
    assert "| a 4-token request during a 4-beam search ÷ the same request alone |" in text


def test_step_ratio_row_reads_section_7() -> None:
    report = Report(SETTINGS, "test")
    report.breakdown = {
        "1 × 32 tokens": {"linear": 8.0, "step": 10.4, "step, unwrapped": 10.0},
        "1 × 1000 tokens": {"linear": 8.0, "step": 13.0, "step, unwrapped": 12.5},
    }  # the ratio reads the steps timed without the parts' timers
    text = report.markdown()
    assert (
        "| decode step at 1,000 tokens of context ÷ at 32 | 1.25 | <= 1.15 | **missed** |" in text
    )
    assert "only read memory" not in text  # no floor without the byte counts
    # the galactica-125m shape: 247 MB of bfloat16 weights read per token, and 36.9 kB of cache
    report.bytes_per_token["bfloat16"] = 247_000_000
    report.kv_bytes_per_token["bfloat16"] = 36_864
    assert "a step that only read memory would be 1.14x as long" in report.markdown()
    # steps alternated one by one, where measured, give the row its ratio
    report.step_pairs = {"near ms": 10.0, "far ms": 11.5, "ratio": 1.12}
    text = report.markdown()
    assert "| decode step at 1,000 tokens of context ÷ at 32 | 1.12 | <= 1.15 | met |" in text
    assert "11.50 ms vs 10.00 ms per step (steps alternated one by one" in text


def test_bandwidth_rows_pair_each_round_with_the_copy_measured_before_it() -> None:
    report = Report(SETTINGS, "test")
    report.bytes_per_token["bfloat16"] = 250_000_000
    report.bandwidths, report.bandwidth, report.bandwidths_1t = [20e9, 50e9], 50e9, [15e9]
    speeds = [60.0, 70.0, 80.0]  # tok/s; the bounds of the rounds' copies: 80, 100, 160
    report.decode["agent bfloat16"] = [inprocess.Rate(128, 0.1, s, s) for s in speeds]
    text = report.markdown()  # no copies per round: the run's largest copy (bound 200)
    assert "| single-stream decode ÷ bandwidth bound (agent bfloat16) | 0.35 | >= 0.70 |" in text
    report.round_bandwidths = [20e9, 25e9, 40e9]
    text = report.markdown()  # 0.75, 0.70, 0.50 per round
    assert (
        "| single-stream decode ÷ bandwidth bound (agent bfloat16) | 0.70 | >= 0.70 | met | "
        "per round against the copy measured just before it, median of 3 (0.50-0.75); "
        "70.0 vs 200.0 tok/s against the run's largest copy (50.0 GB/s ÷ 250 MB/token): 0.35"
    ) in text
    assert "just before each decoding round of section 1 read 20.0, 25.0, 40.0 GB/s" in text


def test_alternated_steps_time_both_contexts(tiny_checkpoint: Path) -> None:
    from galactica_ext.engine.loading import LoadOptions, load_model

    model = load_model(str(tiny_checkpoint), LoadOptions(dtype="bfloat16", device="cpu")).model
    result = inprocess.alternated_steps(model, 1, near=8, far=60, steps=4)
    assert result["near ms"] > 0 and result["far ms"] > 0 and result["ratio"] > 0


def test_attention_rows_compare_the_kernel_with_the_torch_path() -> None:
    report = Report(SETTINGS, "test")
    report.breakdown = {
        # the engine's step: attention inside the fused layers
        "1 × 1000 tokens": {"attention": 0.0, "step": 11.0, "step, unwrapped": 10.5},
        "1 × 1000 tokens, modules": {"attention": 2.0, "step": 13.0, "step, unwrapped": 12.5},
        "1 × 1000 tokens, torch attention": {"attention": 5.0, "step": 16.0},
    }
    text = report.markdown()
    assert (
        "| decoding attention at 1 × 1000 tokens, numba kernel ÷ torch path | 0.40 | (small) |"
        in text
    )
    assert "2.00 vs 5.00 ms per step (section 7, the modules)" in text
    assert "at 4 × 300 tokens" not in text  # not measured: no row


def test_cache_bytes_per_token_are_what_a_prompt_leaves_in_the_cache(
    tiny_checkpoint: Path,
) -> None:
    import torch

    from galactica_ext.engine.loading import LoadOptions, load_model
    from galactica_ext.engine.prefill import prefill

    model = load_model(str(tiny_checkpoint), LoadOptions(dtype="bfloat16", device="cpu")).model
    with torch.inference_mode():
        _, layers = prefill(model, torch.device("cpu"), list(range(100, 111)), None, 0)
    held = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in layers)
    assert held == 11 * inprocess.kv_bytes_per_token(model)


def test_waiting_for_a_quiet_machine_is_bounded_and_recorded() -> None:
    """The pause before each measured request: at least ``pause``, at most ``longest`` more
    (plus one sampling window), whatever else this machine is running; each wait recorded."""
    import time

    before = len(workloads.quiet_waits)
    start = time.perf_counter()
    waited = workloads.wait_for_quiet(0.05, longest=0.3, window=0.05)
    elapsed = time.perf_counter() - start
    assert 0 <= waited <= 0.3 + 0.05 + 0.5  # the window that crosses the limit, scheduling
    assert elapsed >= 0.05 + waited - 1e-3
    assert workloads.quiet_waits[before:] == [waited]


def test_a_step_breakdown_with_the_kernel_and_with_torchs_attention(
    tiny_checkpoint: Path,
) -> None:
    from galactica_ext.engine import bf16_attention
    from galactica_ext.engine.loading import LoadOptions, load_model

    model = load_model(str(tiny_checkpoint), LoadOptions(dtype="bfloat16", device="cpu")).model
    # one sequence: a step the fused layers take on every CPU where their kernels run
    engine = inprocess.step_breakdown(model, 1, 20, 1, steps=3)
    kernel = inprocess.step_breakdown(model, 1, 20, 1, steps=3, fused=False)
    with inprocess.torch_attention():
        assert bf16_attention.kernel() is None
        torch_path = inprocess.step_breakdown(model, 1, 20, 1, steps=3)
    assert bf16_attention.kernel() is not None  # back as it was
    fused = "decoder layers, fused (their products, attention, cache writes, norms)"
    assert engine[fused] > 0 and engine["attention"] == 0  # inside the fused layers
    for parts in (kernel, torch_path):  # through the modules (torch's attention: no fused)
        assert parts[fused] == 0
        assert parts["attention"] > 0 and parts["step"] >= parts["attention"]


def test_the_attention_benchmark_times_both_paths_and_leaves_the_kernel_on() -> None:
    import attention

    from galactica_ext.engine import bf16_attention

    before = bf16_attention.kernel
    result = attention.measure(heads=2, layers=2, rows=1, tokens=8, rounds=2)
    assert result["kernel"] > 0 and result["torch"] > 0
    assert result["bytes"] == 2 * 2 * 8 * 64 * 2
    assert bf16_attention.kernel is before and bf16_attention.kernel() is not None


@pytest.mark.parametrize(
    "dtype",
    ["float32"] + ["bfloat16"] * can_pack(torch.bfloat16, torch.device("cpu")),
)
def test_the_products_benchmark_times_both_paths_and_leaves_the_engine_as_it_was(
    tiny_checkpoint: Path, dtype: str
) -> None:
    import products

    from galactica_ext.engine import few_rows

    limit = few_rows.row_limit(getattr(torch, dtype))
    result = products.products([(16, 24), (24, 16)], limit + 1, 2, getattr(torch, dtype))
    assert result["oneDNN"] > 0 and result["kernel"] > 0
    assert result["bytes"] == 2 * 16 * 24 * (4 if dtype == "float32" else 2)
    assert limit == few_rows.row_limit(getattr(torch, dtype))  # measured past it there only
    models = {"oneDNN": products.load(tiny_checkpoint, False, dtype)}
    models["kernel"] = products.load(tiny_checkpoint, True, dtype)
    assert models["oneDNN"].lm_head.few_rows is None
    assert models["kernel"].lm_head.few_rows is not None
    assert few_rows.kernel() is not None  # the environment as it was
    steps = products.steps(models, batch=1, count=2)
    assert steps["oneDNN"] > 0 and steps["kernel"] > 0 and steps["ratio"] > 0
