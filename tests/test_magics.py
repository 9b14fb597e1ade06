"""The magics in a real IPython InteractiveShell, against a real agent subprocess."""

from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_fixtures import RawServer, Server, isolated_env, stop_process
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output
from task_cases import wait_idle

from galactica_ext import client as client_module
from galactica_ext import tasks
from galactica_ext.client import (
    STREAM_CUT,
    AgentUnavailable,
    CompletionError,
    CompletionsClient,
    StreamCut,
    run_task,
)
from galactica_ext.magics import Citations, GalacticaMagics, Interrupted, interpolate
from galactica_ext.magics_display import INTERRUPTED

README = Path(__file__).resolve().parents[1] / "README.md"


def magics_section() -> str:
    """The README's magics section (up to the next heading of its level)."""
    text = README.read_text()
    start = text.index("## GALACTICA in any kernel: magics")
    end = text.find("\n## ", start + 3)
    return text[start : end if end != -1 else None]


@pytest.fixture
def shell(agent_env: Server) -> Iterator[InteractiveShell]:
    """IPython with ``%load_ext galactica_ext``, in a kernel's environment that finds the agent
    through its runtime file."""
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "galactica_ext")
    before = set(ip.user_ns)
    yield ip
    for name in set(ip.user_ns) - before:
        del ip.user_ns[name]


def run(ip: InteractiveShell, cell: str) -> tuple[Any, CapturedIO]:
    """Run a cell as a notebook would; its displays and printed text are captured."""
    with capture_output() as out:
        result = ip.run_cell(cell, store_history=True)
    return result, out


def displays(out: CapturedIO) -> list[dict]:
    return [o.data for o in out.outputs]


def magics_of(ip: InteractiveShell) -> GalacticaMagics:
    return next(m for m in ip.magics_manager.registry.values() if isinstance(m, GalacticaMagics))


# ------------------------------------------------------------------------------ the tasks


def test_cite_shows_markdown_with_a_warning_and_keeps_the_suggestions(
    shell: InteractiveShell,
) -> None:
    shell.user_ns["topic"] = "self-attention"
    result, out = run(shell, "%%cite -n 2 -o refs\nTransformers rely on {topic}")
    assert result.success, out.stdout
    refs = shell.user_ns["refs"]
    assert isinstance(refs, Citations) and 1 <= len(refs) <= 2
    assert all(set(s) == {"text", "title", "author"} for s in refs)
    final = displays(out)[-1]
    assert final["text/markdown"] == refs.markdown
    assert "1. " in refs.markdown and "scholar.google.com" in refs.markdown
    assert "made up" in refs.markdown and "made up" in final["text/plain"]
    # the same suggestions as the client gives for the interpolated text
    direct = run_task(
        CompletionsClient(shell_url(), shell_token()), "cite",
        "Transformers rely on self-attention", n=2,
    )  # fmt: skip
    assert list(refs) == direct["suggestions"]


def shell_url() -> str:
    return client_module.locate()[0]  # type: ignore[index]


def shell_token() -> str | None:
    return client_module.locate()[1]  # type: ignore[index]


def test_cell_text_interpolates_the_user_namespace(shell: InteractiveShell) -> None:
    shell.user_ns["subject"] = "protein folding"
    a, _ = run(shell, "%%galactica --max-tokens 5 -o a\nThe physics of {subject}")
    b, _ = run(shell, "%%galactica --max-tokens 5 -o b\nThe physics of protein folding")
    assert a.success and b.success
    assert shell.user_ns["a"] == shell.user_ns["b"]
    c, _ = run(shell, "%%galactica --max-tokens 5 -o c\nThe physics of {{subject}}")
    assert c.success


def test_interpolation_leaves_latex_and_unknown_names_alone() -> None:
    ns = {"x": 3, "a": "A", "obj": type("O", (), {"name": "N"})(), "items": ["p", "q"]}
    assert interpolate("x = {x}, {obj.name}, {items[1]}", ns) == "x = 3, N, q"
    assert interpolate(r"\frac{a}{b} + x^{x} + x_{a} + \mathrm{x}", ns) == (
        r"\frac{a}{b} + x^{x} + x_{a} + \mathrm{x}"
    )
    assert interpolate("{unknown} {{x}} {obj.nothing}", ns) == "{unknown} {x} {obj.nothing}"


def test_equation_renders_math_and_returns_the_source(shell: InteractiveShell) -> None:
    result, out = run(shell, "latex = %equation --max-tokens 6 the energy of a photon's field")
    assert result.success, out.stdout
    latex = shell.user_ns["latex"]
    assert isinstance(latex, str)
    final = displays(out)[-1]
    if latex:
        assert final["text/latex"] == rf"$\displaystyle {latex.strip('$')}$"
        assert final["text/plain"] == latex
    else:
        assert final["text/plain"] == "(no equation)"
    # the cell form gives the same equation for the same description
    cell, _ = run(shell, "%%equation --max-tokens 6\nthe energy of a photon's field")
    assert cell.success and cell.result == latex


def test_tldr_of_a_variable_of_out_and_of_the_cell_agree(shell: InteractiveShell) -> None:
    abstract = "Proteins fold into three-dimensional structures that determine their function."
    shell.user_ns["abstract"] = abstract
    from_var, _ = run(shell, "%tldr --max-tokens 5 -o s1 abstract")
    assert from_var.success
    made, _ = run(shell, f"{abstract!r}")
    n = made.execution_count
    from_out, _ = run(shell, f"%tldr --max-tokens 5 -o s2 Out[{n}]")
    from_in, _ = run(shell, f"%tldr --max-tokens 5 -o s3 In[{n}]")
    from_cell, out = run(shell, f"%%tldr --max-tokens 5 -o s4\n{abstract}")
    assert from_out.success and from_in.success and from_cell.success
    ns = shell.user_ns
    assert ns["s1"] == ns["s2"] == ns["s4"]
    assert isinstance(ns["s3"], str)  # In[n] is the source: the quoted text
    final = displays(out)[-1]
    assert final["text/plain"] == (ns["s4"] or "(no summary)")


def test_free_generation_is_greedy_or_seeded(shell: InteractiveShell) -> None:
    for var in ("g1", "g2"):
        result, _ = run(
            shell, f"%%galactica --max-tokens 4 --temperature 0.9 --top-p 0.95 --seed 5 -o {var}\n"
            "Once upon a time"
        )  # fmt: skip
        assert result.success
    assert shell.user_ns["g1"] == shell.user_ns["g2"]
    greedy, _ = run(shell, "%%galactica --max-tokens 4 -o g3\nOnce upon a time")
    request = tasks.complete("Once upon a time", max_tokens=4)
    request.stop = []  # free generation: no paragraph stop
    direct = run_task(CompletionsClient(shell_url(), shell_token()), request)
    assert greedy.success and shell.user_ns["g3"] == direct["text"]


def test_output_streams_in_place(shell: InteractiveShell) -> None:
    magics_of(shell)  # registered
    result, out = run(shell, "%%galactica --max-tokens 40\nThe cell is")
    assert result.success
    outputs = out.outputs
    ids = {(o.transient or {}).get("display_id") for o in outputs}
    assert len(ids) == 1 and None not in ids  # one display, updated in place
    assert outputs[0].update is False and all(o.update for o in outputs[1:])
    assert "▌" in outputs[0].data["text/plain"]  # shown while streaming
    assert "▌" not in outputs[-1].data["text/plain"] and "text/markdown" in outputs[-1].data


def test_a_terminal_gets_the_text_as_it_comes(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    result = shell.run_cell("%%galactica --max-tokens 6 -o t\nThe cell is")
    assert result.success
    printed = capsys.readouterr().out
    assert printed.strip() == shell.user_ns["t"].strip()


def test_status_and_help(shell: InteractiveShell, agent_env: Server) -> None:
    result, out = run(shell, "%galactica status")
    assert result.success
    assert f"at {agent_env.url} (pid {agent_env.proc.pid}" in out.stdout
    assert f"model: {agent_env.model} (float32 on cpu" in out.stdout
    assert re.search(r"queue: \d+ running, \d+ waiting", out.stdout)  # a shared agent's
    result, out = run(shell, "%galactica help")
    assert result.success and "%%cite [-n N] [-o VAR]" in out.stdout
    assert "--max-tokens" in out.stdout


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("cell", "says"),
    [
        ("%%cite -n zero\nText", "invalid int value"),
        ("%%cite -n 0\nText", "n=0 must be between 1 and 16"),
        ("%%cite -o 1bad\nText", "not a valid variable name"),
        ("%%cite\n   ", "text is empty"),
        ("%%cite --nope\nText", "unrecognized arguments"),
        ("%galactica frob", "unknown command 'frob'"),
        ("%galactica load gigantic", "unknown model 'gigantic'"),
        ("%galactica load /no/such/dir", "does not exist"),
        ("%%galactica status\nText", "takes options only"),
        ("%%galactica --temperature -1\nText", "temperature=-1.0 must be >= 0"),
        ("%%galactica --max-tokens 5000\nText", "max_tokens=5000 is out of range"),
        ("%equation", "text is empty"),
        ("%equation --bogus x", "unrecognized option --bogus"),
        ("%%equation something\nText", "from the cell, not the line"),
        ("%tldr", "needs In[n], Out[n], a variable or text"),
        ("%tldr undefined_thing", "'undefined_thing' is not defined"),
        ("%tldr Out[99999]", "Out[99999] does not exist"),
        ("%%tldr abstract\nText", "give no source on the line"),
    ],
)
def test_bad_arguments_raise_usage_error_with_the_usage(
    shell: InteractiveShell, cell: str, says: str
) -> None:
    result, out = run(shell, cell)
    assert isinstance(result.error_in_exec, UsageError), out.stdout
    message = str(result.error_in_exec)
    assert says in message
    magic = re.match(r"%+(\w+)", cell).group(1)  # type: ignore[union-attr]
    assert re.search(rf"%{magic} \[", message), message  # the usage follows


def test_no_agent_is_one_clear_sentence(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch, closed_url: str
) -> None:
    monkeypatch.setenv("GALACTICA_URL", closed_url)
    result, out = run(shell, "%%cite\nThe Transformer")
    assert isinstance(result.error_in_exec, AgentUnavailable)
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, out.stdout  # no traceback
    assert lines[0].startswith(f"AgentUnavailable: No GALACTICA agent answers at {closed_url}")
    assert "GALACTICA_URL" in lines[0] and "%galactica load 125m" in lines[0]
    result, out = run(shell, "%galactica status")
    assert result.success and out.stdout.startswith("No GALACTICA agent answers")


def test_a_cut_stream_or_an_error_event_is_one_line(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch, raw_server: RawServer
) -> None:
    monkeypatch.setenv("GALACTICA_URL", raw_server.url)
    result, out = run(shell, "%%galactica --max-tokens 5\nText")
    assert isinstance(result.error_in_exec, StreamCut)
    assert out.stdout.strip().splitlines()[-1] == f"StreamCut: {STREAM_CUT}"
    assert "Traceback" not in out.stdout
    raw_server.mode = "error"
    result, out = run(shell, "%%galactica --max-tokens 5\nText")
    assert isinstance(result.error_in_exec, CompletionError)
    assert "the sampler failed on this sequence" in out.stdout and "Traceback" not in out.stdout


# ----------------------------------------------------------------------------- interrupt


def test_interrupting_the_kernel_cancels_the_generation(
    shell: InteractiveShell, agent_env: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real SIGINT while this cell's tokens stream (what the notebook's interrupt button
    sends), sent as the cell shows its streamed text, so that it lands while the stream runs
    whatever the model writes and however loaded the machine is. The cell shows one clean
    line, no traceback."""
    from galactica_ext import magics_display

    client = agent_env.client()
    sent = threading.Event()
    show_text = magics_display.Live.text

    def text_then_interrupt(live: magics_display.Live, text: str) -> None:
        show_text(live, text)
        if len(text) > 5 and not sent.is_set():
            sent.set()
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(magics_display.Live, "text", text_then_interrupt)
    # SIGINT raises KeyboardInterrupt, as in a kernel: a suite started as a background job
    # of a shell without job control inherits SIGINT ignored (the interrupt then did nothing)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with capture_output() as out:
            result = shell.run_cell("%%galactica --max-tokens 2000\nA very long story")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert sent.is_set()
    assert isinstance(result.error_in_exec, KeyboardInterrupt)  # the kernel sees it
    assert isinstance(result.error_in_exec, Interrupted)
    # what the user sees: the text that streamed (no cursor), then one line
    assert out.stdout.strip() == INTERRUPTED, out.stdout
    assert "Traceback" not in out.stdout + out.stderr
    partial = displays(out)[-1]["text/plain"]
    assert partial and "▌" not in partial
    # the agent stopped generating it (this request ended well before its 2000 tokens)
    assert wait_idle(client, timeout=10) == {"running": 0, "waiting": 0}
    after, _ = run(shell, "%%galactica --max-tokens 2 -o after\nNext")
    assert after.success


def test_an_interrupted_terminal_magic_prints_one_line(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    """In a terminal the text streams as printed; an interrupt adds only the clean line."""
    err = Interrupted()
    assert isinstance(err, KeyboardInterrupt) and str(err) == INTERRUPTED
    shell.showtraceback((Interrupted, err, None))
    assert capsys.readouterr().out.strip() == INTERRUPTED


# ------------------------------------------------------------------ the model's lifecycle


def test_load_starts_an_agent_and_unload_frees_it(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    isolated_env(monkeypatch, tmp_path)
    runtime = tmp_path / "runtime" / "galactica-agent.json"
    monkeypatch.setenv("GALACTICA_RUNTIME_FILE", str(runtime))
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "galactica_ext")
    ip.user_ns["checkpoint"] = str(tiny_checkpoint)
    before = len(client_module.started_agents)
    try:
        result, out = run(ip, "%galactica status")
        assert result.success and out.stdout.startswith("No GALACTICA agent is running")
        result, out = run(ip, "%galactica load {checkpoint} --dtype float32 --device cpu")
        assert result.success, out.stdout
        assert len(client_module.started_agents) == before + 1 and runtime.exists()
        assert f"model: {tiny_checkpoint} (float32 on cpu" in displays(out)[-1]["text/plain"]
        result, out = run(ip, "%galactica load {checkpoint}")  # already loaded: no reload
        assert result.success
        result, out = run(ip, "%galactica unload")
        assert result.success and ": empty" in out.stdout
        result, out = run(ip, "%%galactica\nText")
        assert isinstance(result.error_in_exec, CompletionError)
        assert "no model loaded" in out.stdout and len(out.stdout.strip().splitlines()) == 1
        result, out = run(ip, "%galactica load {checkpoint} --dtype float32 --device cpu")
        assert result.success and ": ready" in displays(out)[-1]["text/plain"]
        assert len(client_module.started_agents) == before + 1  # the same agent
        result, _ = run(ip, "%%galactica --max-tokens 2\nText")
        assert result.success
    finally:
        for proc in client_module.started_agents[before:]:
            stop_process(proc)
        ip.user_ns.pop("checkpoint", None)


# --------------------------------------------------------------------------- the docs


def doc_cells() -> list[str]:
    """The README's magics section: each fenced block is one notebook cell."""
    return re.findall(r"```python\n(.*?)```", magics_section(), re.DOTALL)


def test_every_line_of_the_magics_docs_runs(shell: InteractiveShell) -> None:
    cells = doc_cells()
    assert len(cells) >= 5
    ran = 0
    for cell in cells:
        result, out = run(shell, cell)
        assert result.success, f"{cell}\n{out.stdout}"
        ran += len([line for line in cell.splitlines() if line.strip()])
    assert ran == sum(len([x for x in c.splitlines() if x.strip()]) for c in cells)
    assert isinstance(shell.user_ns["refs"], Citations)
    # the magics in the docs' table all exist
    table = re.findall(r"^\| `(%%?\w+)", magics_section(), re.MULTILINE)
    registered = shell.magics_manager.lsmagic()
    for magic in table:
        kind = "cell" if magic.startswith("%%") else "line"
        assert magic.lstrip("%") in registered[kind], magic


def test_errors_are_one_line_in_ipython() -> None:
    err = CompletionError("the model is loading", 503, retry_after=2.0)
    assert err._render_traceback_() == ["CompletionError: the model is loading (HTTP 503)"]
    assert err.retry_after == 2.0
    assert tasks.END_REF not in str(err)
