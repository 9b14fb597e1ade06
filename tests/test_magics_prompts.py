"""The prompt library and the licence where users meet them: ``%%galactica --task``,
``%galactica prompts``, sampling options, ``%galactica status``/``help``, the Assistant
widget's prompt choice, and ``galactica-ext info``. A real IPython shell and a real agent
(tiny random-weight checkpoint); results are compared with the same request run directly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from agent_fixtures import Server
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output

from galactica_ext import prompts, tasks
from galactica_ext.client import run_task
from galactica_ext.notices import MODEL_CARD
from galactica_ext.prompts.display import TemplateResult


@pytest.fixture
def shell(agent_env: Server) -> Iterator[InteractiveShell]:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "galactica_ext")
    before = set(ip.user_ns)
    yield ip
    for name in set(ip.user_ns) - before:
        del ip.user_ns[name]


def run(ip: InteractiveShell, cell: str) -> tuple[Any, CapturedIO]:
    with capture_output() as out:
        result = ip.run_cell(cell, store_history=True)
    return result, out


def free(text: str, **options: Any) -> tasks.GenerationRequest:
    request = tasks.complete(text, **options)
    request.stop = []  # what %%galactica sends
    return request


# ---- %galactica prompts, %%galactica --task ------------------------------------------------


def test_prompts_lists_the_library(shell: InteractiveShell) -> None:
    result, out = run(shell, "%galactica prompts")
    assert result.success
    for name in prompts.TEMPLATES:
        assert f"  {name} " in out.stdout
    assert "--task NAME" in out.stdout


def test_task_fills_the_template_from_the_cell(shell: InteractiveShell, agent_env: Server) -> None:
    result, out = run(shell, "%%galactica --task iupac_name --max-tokens 4 -o r\nCCO")
    assert result.success, out.stdout
    r = shell.user_ns["r"]
    direct = run_task(agent_env.client(), "iupac_name", "CCO", max_tokens=4)
    assert r["template"] == "iupac_name" and r["name"] == direct["name"]
    final = out.outputs[-1].data
    assert "can make things up" in final["text/markdown"]


def test_task_takes_other_fields_and_options(shell: InteractiveShell, agent_env: Server) -> None:
    cell = '%%galactica --task paper --field "authors={who}" --max-tokens 3 -o p\nGraph networks'
    shell.user_ns["who"] = "Ada Lovelace"
    result, out = run(shell, cell)
    assert result.success, out.stdout
    direct = run_task(
        agent_env.client(), "paper", "Graph networks", authors="Ada Lovelace", max_tokens=3
    )
    assert shell.user_ns["p"]["text"] == direct["text"]


def test_a_generated_molecule_shows_its_check(shell: InteractiveShell) -> None:
    result, out = run(shell, "%%galactica --task molecule --max-tokens 6 -o m\nC")
    assert result.success, out.stdout
    m = shell.user_ns["m"]
    assert m["template"] == "molecule" and m["smiles"].startswith("C") and "check" in m
    page = out.outputs[-1].data["text/html"]
    assert "<svg" in page or "No structure:" in page  # a drawing, or why there is none
    assert "can make things up" in page


def test_editor_tasks_run_by_name_too(shell: InteractiveShell, agent_env: Server) -> None:
    result, out = run(shell, "%%galactica --task ask --max-tokens 3 -o a\nWhat is DNA?")
    assert result.success, out.stdout
    direct = run_task(agent_env.client(), "ask", "What is DNA?", max_tokens=3)
    assert shell.user_ns["a"]["text"] == direct["text"]


@pytest.mark.parametrize(
    ("cell", "says"),
    [
        ("%%galactica --task nope\nText", "unknown task 'nope'"),
        ("%%galactica --task wiki --field topic\nText", "write KEY=VALUE"),
        ("%%galactica --field authors=x\nText", "--field goes with --task"),
        ("%%galactica --task iupac_name\nC C", "SMILES string without spaces"),
        ("%%galactica --task wiki --field bogus=1\nText", "unknown field"),
        ("%%galactica --task question --top-p 0.5\nWhy?", "only max_tokens and new_doc"),
        ("%%galactica --top-k -1\nText", "top_k=-1 must be >= 0"),
    ],
)
def test_bad_task_arguments_are_usage_errors(shell: InteractiveShell, cell: str, says: str) -> None:
    result, out = run(shell, cell)
    assert isinstance(result.error_in_exec, UsageError), out.stdout
    assert says in str(result.error_in_exec) and "%galactica [" in str(result.error_in_exec)


# ---- sampling options and new documents -------------------------------------------------


def test_top_p_alone_samples(shell: InteractiveShell, agent_env: Server) -> None:
    """galai: top_p given means sampling; before issue 11.5 it was silently greedy."""
    client = agent_env.client()
    sampled = run_task(client, free("Once upon a time", max_tokens=6, top_p=0.9, seed=3))
    greedy = run_task(client, free("Once upon a time", max_tokens=6))
    assert sampled["text"] != greedy["text"]  # deterministic: seeded, and greedy
    result, _ = run(shell, "%%galactica --max-tokens 6 --top-p 0.9 --seed 3 -o s\nOnce upon a time")
    assert result.success and shell.user_ns["s"] == sampled["text"]
    result, _ = run(shell, "%%galactica --max-tokens 6 --top-k 5 --seed 3 -o k\nOnce upon a time")
    topk = run_task(client, free("Once upon a time", max_tokens=6, top_k=5, seed=3))
    assert result.success and shell.user_ns["k"] == topk["text"]


def test_new_doc_starts_a_document(shell: InteractiveShell, agent_env: Server) -> None:
    result, _ = run(shell, "%%galactica --new-doc --max-tokens 4 -o d\n# Entropy\n")
    # IPython ends a cell with a newline, which the magics drop
    direct = run_task(agent_env.client(), free("# Entropy", max_tokens=4, new_doc=True))
    assert result.success and shell.user_ns["d"] == direct["text"]
    assert (
        direct["usage"]["prompt_tokens"]
        == run_task(agent_env.client(), free("# Entropy", max_tokens=1))["usage"]["prompt_tokens"]
        + 1
    )  # the </s> token


# ---- the licence ------------------------------------------------------------------------


def test_status_and_help_state_the_licence(shell: InteractiveShell) -> None:
    for cell in ("%galactica status", "%galactica help"):
        result, out = run(shell, cell)
        assert result.success
        assert "CC BY-NC 4.0" in out.stdout and "non-commercial" in out.stdout
        assert MODEL_CARD in out.stdout
    assert "can make things up (citations, numbers, molecules)" in out.stdout
    assert "--task NAME" in out.stdout and "--new-doc" in out.stdout


def test_cli_info_states_the_licence(capsys: pytest.CaptureFixture[str]) -> None:
    from galactica_ext.cli import main

    assert main(["info", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["model licence"].startswith("CC BY-NC 4.0")
    assert facts["model card"] == MODEL_CARD and "make things up" in facts["notice"]
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "non-commercial" in text and MODEL_CARD in text


# ---- displays of results (no agent) ----------------------------------------------------


def test_template_results_show_by_kind() -> None:
    pytest.importorskip("rdkit")
    mol = TemplateResult(
        "molecule", tasks.parse(prompts.build("molecule"), ["CC(=O)O[END_I_SMILES]"])
    )
    page = mol._repr_html_() or ""
    assert "<svg" in page and "CC(=O)O" in page and "C2H4O2" in page
    bad = TemplateResult("molecule", tasks.parse(prompts.build("molecule"), ["C1CC("]))
    assert "No structure:" in (bad._repr_html_() or "") and "does not parse" in bad.plain
    keywords = TemplateResult(
        "protein_keywords",
        tasks.parse(prompts.build("protein_keywords", "MKT"), ["\n\nCytoplasm, Transferase\n\n"]),
    )
    assert keywords.plain == "- Cytoplasm\n- Transferase"
    assert (keywords._repr_markdown_() or "").endswith("check what it writes.*")
    table = TemplateResult(
        "molecule_properties",
        tasks.parse(
            prompts.build("molecule_properties", "CCO"),
            [" ethanol.\n\n### Computed Properties\n\n| Molecular Weight | 46.07\n"],
        ),
    )
    assert "| Molecular Weight | 46.07 |" in (table._repr_markdown_() or "")


# ---- the Assistant widget ---------------------------------------------------------------


def test_widget_runs_a_prompt_of_the_library(agent_env: Server) -> None:
    from galactica_ext.widget import Assistant

    panel = Assistant(options={"iupac_name": {"max_tokens": 4}})
    assert [v for _, v in panel.template.options] == list(prompts.TEMPLATES)
    panel.template.value = "iupac_name"
    panel.text.value = "CCO"
    panel.template_button.click()
    assert panel.wait(60)
    assert panel.error is None and panel.result is not None
    direct = run_task(agent_env.client(), "iupac_name", "CCO", max_tokens=4)
    assert panel.result["name"] == direct["name"]
    assert "can make things up" in panel.output.value
    assert not panel.template_button.disabled
    assert panel.insert_text == TemplateResult("iupac_name", panel.result).plain
