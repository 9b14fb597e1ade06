"""The library magics in a real IPython InteractiveShell, against the real agent (tiny model).

``%galactica library`` and ``%%cite --library`` read the real bibliographies in tests/data.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_fixtures import Server
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output

from galactica_ext import tasks
from galactica_ext.client import request_payload
from galactica_ext.library import load
from galactica_ext.magics_library import LibraryCitations, LibraryMagics

DATA = Path(__file__).parent / "data"


@pytest.fixture
def shell(agent_env: Server) -> Iterator[InteractiveShell]:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "galactica_ext")
    before = set(ip.user_ns)
    yield ip
    library_magics(ip).paths = []
    for name in set(ip.user_ns) - before:
        del ip.user_ns[name]


def library_magics(ip: InteractiveShell) -> LibraryMagics:
    return next(m for m in ip.magics_manager.registry.values() if isinstance(m, LibraryMagics))


def run(ip: InteractiveShell, cell: str) -> tuple[Any, CapturedIO]:
    with capture_output() as out:
        result = ip.run_cell(cell, store_history=True)
    return result, out


def shown(out: CapturedIO) -> str:
    return out.stdout + "".join(o.data.get("text/plain", "") for o in out.outputs)


def client_sends_choices() -> bool:
    request = tasks.cite("x", n=1)
    request.choices = [" A, B"]
    return "structured_outputs" in request_payload(request)


def test_session_library_reports_entries_and_failures(
    shell: InteractiveShell, tmp_path: Path
) -> None:
    broken = shutil.copy(DATA / "broken.bib", tmp_path / "broken.bib")
    result, out = run(shell, f"%galactica library {broken}")
    assert result.success, shown(out)
    text = out.stdout
    assert f"Library {broken}: 3 entries loaded, 3 problem(s):" in text
    assert f"{broken}:10: malformed entry skipped" in text
    assert f"{broken}:21: duplicate key 'vaswani2017attention'" in text
    assert f"{broken}:27: malformed entry skipped" in text
    assert library_magics(shell).paths == [str(Path(broken).resolve())]
    # shown again, and forgotten
    _, out = run(shell, "%galactica library")
    assert "3 entries loaded" in out.stdout
    _, out = run(shell, "%galactica library none")
    assert "No session library" in out.stdout and library_magics(shell).paths == []


def test_session_library_bad_paths_change_nothing(shell: InteractiveShell, tmp_path: Path) -> None:
    run(shell, f"%galactica library {DATA / 'refs.json'}")
    _, out = run(shell, f"%galactica library {tmp_path / 'missing.bib'}")
    assert "0 entries loaded, 1 problem(s):" in out.stdout and "no such file" in out.stdout
    assert "the session library is unchanged" in out.stdout
    assert library_magics(shell).paths == [str((DATA / "refs.json").resolve())]


def test_other_galactica_commands_pass_through(shell: InteractiveShell) -> None:
    result, out = run(shell, "%galactica help")
    assert result.success
    assert "%galactica status" in out.stdout  # the base magic's help
    assert "%%cite --library PATH" in out.stdout  # and ours


def test_free_cite_checked_against_the_library(shell: InteractiveShell) -> None:
    cell = f"%%cite --library {DATA / 'mne-references.bib'} --free -n 2 -o refs\nSource imaging"
    result, out = run(shell, cell)
    assert result.success, shown(out)
    refs = shell.user_ns["refs"]
    assert isinstance(refs, LibraryCitations) and 1 <= len(refs) <= 2
    text = shown(out)
    for i, suggestion in enumerate(refs, 1):
        if suggestion["key"]:  # found in the library
            assert f"{i}. [@{suggestion['key']}]  " in text
        else:  # random weights: made up, marked
            assert suggestion["insert"].endswith("]{.unverified}")
            assert f"{i}. {suggestion['insert']}  UNVERIFIED" in text
    assert "free suggestions checked against" in text


def test_without_a_library_cite_is_the_free_one(shell: InteractiveShell) -> None:
    result, out = run(shell, "%%cite -n 1 -o refs\nThe Transformer")
    assert result.success, shown(out)
    assert not isinstance(shell.user_ns["refs"], LibraryCitations)  # the base magic's result


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        (f"%%cite --library {DATA}/nope.bib\nText", "the library has no entries"),
        (f"%%cite --library {DATA}/refs.json -n zero\nText", "invalid int value"),
        (f"%%cite --library {DATA}/refs.json -o 1bad\nText", "not a valid variable name"),
        (f"%%cite --library {DATA}/refs.json --bogus\nText", "unrecognized arguments"),
        (f"%%cite --library {DATA}/refs.json\n   ", "text is empty"),
        ("%%cite --library\nText", "expected one argument"),
    ],
)
def test_bad_input_is_a_usage_error(shell: InteractiveShell, cell: str, message: str) -> None:
    result, out = run(shell, cell)
    assert isinstance(result.error_in_exec, UsageError), shown(out)
    assert message in str(result.error_in_exec)


@pytest.mark.skipif(
    not client_sends_choices(), reason="the client does not send choices yet (issue 10 item 2)"
)
def test_grounded_cite_prints_keys_first(shell: InteractiveShell) -> None:
    path = DATA / "mne-references.bib"
    result, out = run(shell, f"%%cite --library {path} -n 3 -o refs\nSource imaging with MNE")
    assert result.success, shown(out)
    refs = shell.user_ns["refs"]
    library = load(path)
    assert 1 <= len(refs) <= 3 and len(set(refs.keys)) == len(refs)
    lines = shown(out).splitlines()
    for i, suggestion in enumerate(refs, 1):
        entry = library.get(suggestion["key"])
        assert entry is not None and suggestion["source"] == "library"
        assert f"{i}. [@{entry.key}]  {entry.title} — {entry.author} ({entry.year})" in lines
    # the session library is used when --library is not given
    run(shell, f"%galactica library {path}")
    result, out = run(shell, "%%cite -n 1 -o again\nSource imaging with MNE")
    assert result.success and shell.user_ns["again"].keys[0] in library


def test_citations_markdown_marks_the_unverified() -> None:
    citations = LibraryCitations(
        [
            {"key": "k1", "title": "A *bold* title", "author": "Smith", "year": "2020"},
            {
                "key": None,
                "title": "X",
                "text": "X [y], Z",
                "insert": "[X (y), Z]{.unverified}",
                "search": "https://scholar.google.com/scholar?q=X",
            },
        ],
        "ranked 3 entries of refs.bib",
    )
    assert citations.keys == ["k1"]
    assert citations._repr_markdown_().splitlines() == [
        "1. `[@k1]` A \\*bold\\* title — Smith (2020)",
        "2. **unverified**: X \\[y\\], Z ([search for it](https://scholar.google.com/scholar?q=X))",
        "",
        "*ranked 3 entries of refs.bib*",
    ]
    assert repr(citations).splitlines()[1] == (
        "2. [X (y), Z]{.unverified}  UNVERIFIED: not in your library, check it exists"
    )


def test_the_notebooks_own_library_is_found(
    shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ipykernel names the notebook in __session__; the Jupyter Book config beside it names
    # the library
    shutil.copy(DATA / "refs.yaml", tmp_path / "refs.yaml")
    (tmp_path / "_config.yml").write_text("bibtex_bibfiles: [refs.yaml]\n")
    (tmp_path / "nb.ipynb").write_text('{"cells": [], "metadata": {}}')
    monkeypatch.chdir(tmp_path)
    shell.user_ns["__session__"] = "some/folder/nb.ipynb"  # relative to the server's root
    result, out = run(shell, "%%cite --free -n 1 -o refs\nDeep networks")
    assert result.success, shown(out)
    assert isinstance(shell.user_ns["refs"], LibraryCitations)
    assert f"free suggestions checked against {tmp_path / 'refs.yaml'})" in shown(out)
