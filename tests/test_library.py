"""The bibliography library: reading every format, bad input, discovery, path rules, cache.

Real files only: the fixtures in ``tests/data`` (a real-world 233-entry BibTeX file from
MNE-Python's documentation, and hand-written bad input) and files written to ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from galactica_ext.library import (
    LibraryStore,
    PathRefused,
    cited_keys,
    entries_to_bibtex,
    find_library,
    keys_in_text,
    load,
    parse_bibtex,
    resolve_inside,
    split_open_citation,
)
from galactica_ext.library.latex import decode_latex

DATA = Path(__file__).parent / "data"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


ONE = "@article{one2020, title={{One} Title}, author={First, Ann and Second, Bo}, year={2020}}\n"
TWO = "@book{two2021, title={Two Title}, author={Zweig, Stefan}, year={2021}}\n"


# --- reading ---------------------------------------------------------------------------


def test_real_world_bibtex_loads_whole() -> None:
    library = load(DATA / "mne-references.bib")
    assert len(library) == 233
    assert library.problems == []
    entry = library.get("GramfortEtAl2013a")
    assert entry is not None
    assert entry.title == "MEG and EEG Data Analysis with MNE-Python"
    assert (entry.author, entry.year, entry.doi) == ("Gramfort", "2013", "10.3389/fnins.2013.00267")
    # LaTeX accents and {{protected}} words decoded
    assert library.get("BrunaEtAl2018").author.endswith("Bruña")
    assert all("{" not in e.title and "\\" not in e.title for e in library)
    # every entry has its CSL item for formatting, keyed by the entry's key
    assert all(e.csl["id"] == e.key and e.csl["title"] == e.title for e in library)


def test_broken_bibtex_reports_lines_and_keeps_the_rest() -> None:
    library = load(DATA / "broken.bib")
    assert [e.key for e in library] == ["vaswani2017attention", "schrodinger1926", "devlin2019bert"]
    assert library.get("vaswani2017attention").title == "Attention Is All You Need"  # the first
    assert library.get("schrodinger1926").author == "Schrödinger"
    lines = {p.line: p.message for p in library.problems}
    assert set(lines) == {10, 21, 27}
    assert "malformed entry skipped" in lines[10] and "@article{broken1" in lines[10]
    assert "duplicate key 'vaswani2017attention'" in lines[21] and "kept the first" in lines[21]
    assert "@misc{noclose" in lines[27]
    assert all(str(p).startswith(str(DATA / "broken.bib")) for p in library.problems)


def test_csl_json_and_yaml() -> None:
    library = load([DATA / "refs.json", DATA / "refs.yaml"])
    by_key = {e.key: e for e in library}
    assert list(by_key) == ["taylor2022galactica", "Jumper2021", "lecun2015deep", "who2020"]
    jumper = by_key["Jumper2021"]  # citation-key wins over id; rich text and DOI prefix removed
    assert jumper.title == "Highly accurate protein structure prediction with AlphaFold"
    assert jumper.doi == "10.1038/s41586-021-03819-2"
    assert by_key["lecun2015deep"].year == "2015"
    assert by_key["lecun2015deep"].csl["issued"] == {"date-parts": [[2015, 5, 27]]}
    assert by_key["who2020"].author == "World Health Organization"
    messages = [p.message for p in library.problems]
    assert messages == [
        "item 3 skipped: item 'notitle' has no title",
        "item 4 skipped: an item must be an object, not str",
    ]


def test_notebook_citation_manager_items() -> None:
    found = find_library(DATA / "citation-manager.ipynb")
    assert found.origin == "notebook"
    assert [(e.key, e.author, e.year) for e in found.library] == [
        ("7890/ABCDEFGH", "Vaswani", "2017"),
        ("7890/IJKLMNOP", "He", "2016"),
    ]
    assert len(found.library.problems) == 1
    assert "7890/BROKEN" in found.library.problems[0].message


@pytest.mark.parametrize(
    ("latex", "text"),
    [
        (r"{{Attention} Is All You Need}", "Attention Is All You Need"),
        (r"Schr{\"o}dinger", "Schrödinger"),
        (r"\'{E}tienne {\'e}t{\'e}", "Étienne été"),
        (r"Gar\c{c}on Gar\c con", "Garçon Garçon"),
        (r"Erd\H{o}s na\"{\i}ve \L{}\'od\'z", "Erdős naïve Łódź"),
        (r"\AA{}ngstr\"om Stra\ss e {\o}rsted", "Ångström Straße ørsted"),
        (r"Tom \& Jerry 50\% -- ok---yes", "Tom & Jerry 50% – ok—yes"),
        (r"\emph{Deep} nets", "Deep nets"),  # through bibtexparser's pylatexenc decoder
        (r"The $\alpha$-helix", r"The $\alpha$-helix"),  # math kept as written
    ],
)
def test_latex_decoding(latex: str, text: str) -> None:
    assert decode_latex(latex) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("   \n\n", "the file is empty"),
        ("just some words, no entries", "no entries found in the file"),
    ],
)
def test_empty_files(tmp_path: Path, text: str, message: str) -> None:
    library = load(write(tmp_path / "x.bib", text))
    assert len(library) == 0
    assert [p.message for p in library.problems] == [message]


def test_bad_files_are_problems_not_errors(tmp_path: Path) -> None:
    write(tmp_path / "notjson.json", "{not json")
    write(tmp_path / "notyaml.yaml", "a: [b\n  c: d")
    write(tmp_path / "refs.txt", ONE)
    (tmp_path / "folder.bib").mkdir()
    write(tmp_path / "latin1.bib", "").write_bytes(
        "@book{k, title={Caf\xe9 culture}, author={M\xfcller, J}}".encode("latin-1")
    )
    names = ["notjson.json", "notyaml.yaml", "refs.txt", "missing.bib", "folder.bib"]
    library = load([tmp_path / n for n in [*names, "latin1.bib"]])
    messages = {Path(p.source).name: p.message for p in library.problems}
    assert messages["notjson.json"].startswith("not valid JSON")
    assert messages["notyaml.yaml"].startswith("not valid YAML")
    assert messages["refs.txt"].startswith("unknown bibliography format")
    assert messages["missing.bib"] == "no such file"
    assert messages["folder.bib"] == "not a file"
    assert "read as Latin-1" in messages["latin1.bib"]
    assert [(e.title, e.author) for e in library] == [("Café culture", "Müller")]


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path / "secret.bib", ONE)
    path.chmod(0)
    try:
        library = load(path)
    finally:
        path.chmod(0o600)
    assert len(library) == 0
    assert library.problems[0].message.startswith("cannot read it")


def test_size_cap(tmp_path: Path) -> None:
    big = tmp_path / "big.bib"
    chunk = "".join(TWO.replace("two2021", f"k{i}") for i in range(1000))
    with big.open("w") as out:  # a 50 MB file: refused from its size, never read
        for _ in range(50 * 1024 * 1024 // len(chunk) + 1):
            out.write(chunk)
    assert big.stat().st_size > 50 * 1024 * 1024
    store = LibraryStore()
    library = store.read(big, "big.bib")
    assert len(library) == 0 and store.parses == 0
    message = library.problems[0].message
    assert message.startswith("too big to read (5") and "the limit is 21 MB" in message
    # the rest of a library still loads beside it
    library = load([big, write(tmp_path / "small.bib", ONE)])
    assert [e.key for e in library] == ["one2020"] and len(library.problems) == 1


def test_bibtex_entry_csl_item_has_only_fields_given(tmp_path: Path) -> None:
    path = write(
        tmp_path / "refs.bib",
        "@incollection{ed2019, title={Chapter}, editor={Editor, Eve}, year={2019}, "
        "doi={https://doi.org/10.1/X}, url={https://x.org}, publisher={Pub}}\n"
        "@misc{bare, author={Solo, Han}}\n",
    )
    assert [e.csl for e in load(path)] == [
        {"id": "ed2019", "type": "chapter", "title": "Chapter",
         "editor": [{"family": "Editor", "given": "Eve"}], "issued": {"date-parts": [[2019]]},
         "DOI": "10.1/X", "URL": "https://x.org", "publisher": "Pub"},
        {"id": "bare", "type": "article", "author": [{"family": "Solo", "given": "Han"}]},
    ]  # fmt: skip


def test_duplicate_keys_across_files(tmp_path: Path) -> None:
    a = write(tmp_path / "a.bib", ONE)
    b = write(tmp_path / "b.json", json.dumps([{"id": "one2020", "title": "Other"}]))
    library = load([a, b])
    assert [e.title for e in library] == ["One Title"]
    assert "duplicate key 'one2020'" in library.problems[0].message
    assert str(a) in library.problems[0].message


def test_cache_follows_mtime(tmp_path: Path) -> None:
    path = write(tmp_path / "refs.bib", ONE)
    store = LibraryStore()
    assert [e.key for e in store.read(path)] == ["one2020"]
    assert [e.key for e in store.read(path)] == ["one2020"]
    assert store.parses == 1
    write(path, ONE + TWO)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert [e.key for e in store.read(path)] == ["one2020", "two2021"]
    assert store.parses == 2


# --- discovery -------------------------------------------------------------------------


def notebook(path: Path, metadata: dict | None = None, first_markdown: str = "") -> Path:
    cells = [{"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": []}]
    if first_markdown:
        cells.append({"cell_type": "markdown", "source": first_markdown, "metadata": {}})
    nb = {"cells": cells, "metadata": metadata or {}, "nbformat": 4, "nbformat_minor": 5}
    return write(path, json.dumps(nb))


def test_discovery_order(tmp_path: Path) -> None:
    root = tmp_path
    write(root / "book" / "refs" / "book.bib", ONE)
    write(root / "book" / "myst.yml", "project:\n  bibliography:\n    - refs/book.bib\n")
    write(root / "book" / "ch1" / "beside.bib", TWO)
    nb = notebook(root / "book" / "ch1" / "nb.ipynb")
    # 4: *.bib beside the notebook loses to 3: myst.yml above it
    found = find_library("book/ch1/nb.ipynb", root=root)
    assert (found.origin, [e.key for e in found.library]) == ("myst.yml", ["one2020"])
    assert found.library.sources == ["book/refs/book.bib"]
    # 2: the notebook's own front matter beats the project
    notebook(nb, first_markdown="---\nbibliography: beside.bib\n---\n# Title")
    found = find_library("book/ch1/nb.ipynb", root=root)
    assert (found.origin, [e.key for e in found.library]) == ("notebook", ["two2021"])
    # ... and metadata.bibliography beats front matter
    notebook(nb, {"bibliography": ["../refs/book.bib"]}, "---\nbibliography: beside.bib\n---\n")
    assert [e.key for e in find_library("book/ch1/nb.ipynb", root=root).library] == ["one2020"]
    # 1: the user's paths beat everything
    found = find_library("book/ch1/nb.ipynb", root=root, user_paths=["beside.bib"])
    assert (found.origin, [e.key for e in found.library]) == ("user", ["two2021"])


def test_jupyter_book_config_and_folder(tmp_path: Path) -> None:
    write(tmp_path / "_config.yml", "title: x\nbibtex_bibfiles:\n  - refs.bib\n")
    write(tmp_path / "refs.bib", ONE + TWO)
    notebook(tmp_path / "docs" / "nb.ipynb")
    found = find_library("docs/nb.ipynb", root=tmp_path)
    assert found.origin == "_config.yml" and len(found.library) == 2
    (tmp_path / "_config.yml").unlink()
    write(tmp_path / "docs" / "b.bib", TWO)
    write(tmp_path / "docs" / "a.bib", ONE)
    found = find_library("docs/nb.ipynb", root=tmp_path)
    assert (found.origin, found.paths) == ("folder", ["a.bib", "b.bib"])
    (tmp_path / "docs" / "a.bib").unlink()
    (tmp_path / "docs" / "b.bib").unlink()
    found = find_library("docs/nb.ipynb", root=tmp_path)
    assert (found.origin, len(found.library), found.library.problems) == ("none", 0, [])


def test_folder_discovery_skips_our_export_beside_a_users_bib(tmp_path: Path) -> None:
    notebook(tmp_path / "nb.ipynb")
    write(tmp_path / "refs.bib", ONE + TWO)
    exported = entries_to_bibtex(list(load([tmp_path / "refs.bib"])), notebook="nb.ipynb")
    assert exported.startswith("% exported by galactica-ext from nb.ipynb\n")
    write(tmp_path / "nb.bib", exported)
    found = find_library("nb.ipynb", root=tmp_path)
    assert (found.origin, found.paths, found.library.problems) == ("folder", ["refs.bib"], [])
    assert [e.key for e in found.library] == ["one2020", "two2021"]
    # the export alone is still the notebook's library
    (tmp_path / "refs.bib").unlink()
    found = find_library("nb.ipynb", root=tmp_path)
    assert (found.origin, found.paths, len(found.library)) == ("folder", ["nb.bib"], 2)
    # named explicitly, an export is read like any file
    found = find_library("nb.ipynb", root=tmp_path, user_paths=["nb.bib"])
    assert (found.origin, len(found.library)) == ("user", 2)


def test_myst_markdown_notebook_front_matter(tmp_path: Path) -> None:
    write(tmp_path / "refs.bib", TWO)
    write(tmp_path / "other.bib", ONE)
    write(tmp_path / "paper.md", "---\nbibliography: [refs.bib]\n---\n# A MyST notebook\n")
    found = find_library("paper.md", root=tmp_path)
    assert (found.origin, [e.key for e in found.library]) == ("notebook", ["two2021"])


# --- the path rules --------------------------------------------------------------------


def test_paths_outside_the_root_are_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    write(outside / "secret.bib", ONE)
    write(root / "ok.bib", TWO)
    notebook(root / "nb.ipynb", {"bibliography": ["../outside/secret.bib", "ok.bib"]})
    found = find_library("nb.ipynb", root=root)
    assert [e.key for e in found.library] == ["two2021"]
    assert [(p.source, p.message) for p in found.library.problems] == [
        ("../outside/secret.bib", "outside the Jupyter root, not read")
    ]
    absolute = find_library("nb.ipynb", root=root, user_paths=[str(outside / "secret.bib")])
    assert len(absolute.library) == 0
    assert "outside the Jupyter root" in absolute.library.problems[0].message
    # the notebook itself outside the root: nothing is read
    refused = find_library("../outside/nb.ipynb", root=root)
    assert refused.origin == "none" and "outside the Jupyter root" in str(
        refused.library.problems[0]
    )


def test_symlinks_out_of_the_root_are_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    write(outside / "secret.bib", ONE)
    root.mkdir()
    (root / "link.bib").symlink_to(outside / "secret.bib")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    write(root / "inside.bib", TWO)
    (root / "good-link.bib").symlink_to(root / "inside.bib")
    notebook(root / "nb.ipynb")
    found = find_library("nb.ipynb", root=root)  # *.bib beside it: two links and a file
    assert [e.key for e in found.library] == ["two2021"]  # good-link.bib; inside.bib duplicate
    refused = [p for p in found.library.problems if "outside" in p.message]
    assert [p.source for p in refused] == ["link.bib"]
    with pytest.raises(PathRefused, match="outside the Jupyter root"):
        resolve_inside("linkdir/secret.bib", root)


def test_hidden_paths(tmp_path: Path) -> None:
    write(tmp_path / ".private" / "refs.bib", ONE)
    with pytest.raises(PathRefused, match="hidden"):
        resolve_inside(".private/refs.bib", tmp_path)
    assert resolve_inside(".private/refs.bib", tmp_path, allow_hidden=True).is_file()


# --- export ----------------------------------------------------------------------------


def test_bibtex_export_round_trip(tmp_path: Path) -> None:
    library = load([DATA / "broken.bib", DATA / "refs.json"])
    text = entries_to_bibtex(list(library))
    entries, problems = parse_bibtex(text, "export.bib")
    assert problems == []
    assert [e.key for e in entries] == [e.key for e in library]
    for before, after in zip(library, entries, strict=True):
        assert (after.title, after.author, after.year) == (before.title, before.author, before.year)
    # a .bib entry is written from its fields as read (its {{protection}} kept)
    assert "{{Attention} Is All You Need}" in text


# --- cited keys ------------------------------------------------------------------------


def test_keys_in_text_reads_every_citation_syntax() -> None:
    text = (
        "As shown [@vaswani2017; see @he2016, p. 3] and @devlin2019's work (mail a@b.com).\n"
        'MyST {cite:p}`lecun2015,bengio2013` and {cite}`x1`. <cite data-cite="Jumper2021">'
        "(J)</cite> LaTeX \\citep[p.~3]{smith2020, jones2021}. [-@taylor2022] @{7890/ABCD}."
    )
    assert keys_in_text(text) == [
        "vaswani2017", "he2016", "devlin2019", "lecun2015", "bengio2013", "x1", "Jumper2021",
        "smith2020", "jones2021", "taylor2022", "7890/ABCD",
    ]  # fmt: skip


def test_keys_in_text_skips_an_escaped_at() -> None:
    assert keys_in_text("[Paper, \\@smith2020]{.unverified} and [@jones2021]") == ["jones2021"]


def test_cited_keys_are_library_keys_first_use_first() -> None:
    library = load([DATA / "broken.bib", DATA / "refs.json"])
    nb = {
        "cells": [
            {"cell_type": "code", "source": "x = '@devlin2019bert'"},  # code is not prose
            {"cell_type": "markdown", "source": ["See [@Jumper2021; @unknown] ", "and a@b.c."]},
            {"cell_type": "raw", "source": "\\cite{devlin2019bert,Jumper2021}"},
        ]
    }
    assert cited_keys(nb, library) == ["Jumper2021", "devlin2019bert"]


@pytest.mark.parametrize(
    ("text", "before", "prefix"),
    [
        ("Transformers [@", "Transformers", ""),
        ("Transformers [@vas", "Transformers", "vas"),
        ("as in [see @he2016, p. 3; @vas", "as in", "vas"),
        ("MyST {cite:p}`vas", "MyST", "vas"),
        ("MyST {cite}`a,b", "MyST", "b"),
        ('nbconvert <cite data-cite="Jum', "nbconvert", "Jum"),
        ("plain text", "plain text", None),
        ("closed [@a] done", "closed [@a] done", None),
        ("mail a@b", "mail a@b", None),
        ("unverified [Paper, \\@smi", "unverified [Paper, \\@smi", None),
        ("[Paper, \\@x]{.unverified} [@vas", "[Paper, \\@x]{.unverified}", "vas"),
    ],
)
def test_split_open_citation(text: str, before: str, prefix: str | None) -> None:
    assert split_open_citation(text) == (before, prefix)


def test_with_key_prefix() -> None:
    library = load(DATA / "mne-references.bib")
    gram = library.with_key_prefix("gram")
    assert len(gram) >= 3 and all(e.key.startswith("Gramfort") for e in gram)
    assert len(library.with_key_prefix("")) == len(library)
    assert len(library.with_key_prefix("zzz")) == 0
