"""Matching free suggestions, the grounded cite request, the BM25 shortlist, CSL formatting.

The library is the real-world MNE-Python bibliography (tests/data). The cite request is
checked as far as it is ours (choices, stops, tokens for the longest choice, with the real
GALACTICA tokenizer); the end-to-end run is in test_library_server.py and test_magics_library.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from galactica_ext import tasks
from galactica_ext.library import (
    Entry,
    Library,
    Matcher,
    check_suggestions,
    choice_text,
    format_references,
    grounded_cite,
    keys_in_text,
    load,
    unverified_span,
)
from galactica_ext.library.bm25 import BM25
from galactica_ext.library.formatting import FormatError, styles
from galactica_ext.library.grounding import shortlist

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def mne() -> Library:
    return load(DATA / "mne-references.bib")


# --- matching --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "author", "key"),
    [
        ("MEG and EEG Data Analysis with MNE-Python", "Gramfort", "GramfortEtAl2013a"),
        ("meg and eeg data analysis with mne python", "Gramfort", "GramfortEtAl2013a"),
        ("MEG and EEG Data Analysis with MNE-Pyhton", "Gramfort", "GramfortEtAl2013a"),  # typo
        ("MEG and EEG Data Analysis with MNE-Python", None, "GramfortEtAl2013a"),  # no author
        ("MNE software for processing MEG and EEG data", "Gramfort", "GramfortEtAl2014"),
        # accents: GALACTICA may write them or not
        ("Interpreting magnetic fields of the brain: minimum norm estimates",
         "Hamalainen", "HamalainenIlmoniemi1994"),
    ],
)  # fmt: skip
def test_free_suggestions_that_are_library_entries(
    mne: Library, title: str, author: str | None, key: str
) -> None:
    found = Matcher(mne).match(title, author)
    assert found is not None and found.entry.key == key
    assert found.score >= 90


@pytest.mark.parametrize(
    ("title", "author"),
    [
        ("MEG and EEG Data Analysis with MNE-Python", "Smith"),  # another first author
        ("EEG data analysis", "Gramfort"),  # too short a title to be that paper
        ("Attention is all you need", "Vaswani"),  # not in this library
        ("", "Gramfort"),
    ],
)
def test_suggestions_not_in_the_library(mne: Library, title: str, author: str | None) -> None:
    assert Matcher(mne).match(title, author) is None


def test_check_suggestions_marks_the_rest_unverified(mne: Library) -> None:
    raw = ["MEG and EEG data analysis with MNE-Python, Gramfort", "A [made] up paper, Nobody"]
    result = tasks.parse(tasks.cite("x"), raw)
    marked = check_suggestions(result["suggestions"], Matcher(mne))
    assert [s["source"] for s in marked] == ["library", "model"]
    assert marked[0]["key"] == "GramfortEtAl2013a" and marked[0]["insert"] == "[@GramfortEtAl2013a]"
    assert marked[0]["generated"] == raw[0] and marked[0]["verified"] is True
    assert marked[1]["verified"] is False and marked[1]["key"] is None
    assert marked[1]["insert"] == "[A (made) up paper, Nobody]{.unverified}"
    assert check_suggestions(result["suggestions"], None)[0]["verified"] is False


def test_unverified_span() -> None:
    assert unverified_span("Deep learning", "LeCun") == "[Deep learning, LeCun]{.unverified}"
    assert unverified_span("Untitled [draft]") == "[Untitled (draft)]{.unverified}"


def test_unverified_span_has_no_citation_key() -> None:
    # as js/citations/insert.ts: `@` escaped, brackets inside made parentheses
    span = unverified_span("On [@smith2020] and @jones", "O'Neil @ MIT")
    assert span == "[On (\\@smith2020) and \\@jones, O'Neil \\@ MIT]{.unverified}"
    assert keys_in_text(span) == []


# --- the grounded request --------------------------------------------------------------


def test_grounded_cite_request(mne: Library, tokenizer) -> None:
    grounding = grounded_cite("Sources were localised with MNE", mne, n=3)
    request = grounding.request
    free = tasks.cite("Sources were localised with MNE", n=3)
    assert request.prompt == free.prompt and request.prompt.endswith(" [START_REF]")
    assert (request.stop, request.stop_token_ids, request.n) == (["[END_REF]"], [5], 3)
    # n ranked greedy sequences, never beams (vLLM's beams ignore the constraint)
    assert (request.num_beams, request.temperature, request.diversity_penalty) == (1, 0.0, 0.0)
    assert len(request.choices) == len(set(request.choices)) == 233
    assert " MEG and EEG Data Analysis with MNE-Python, Gramfort" in request.choices
    assert all(c.startswith(" ") and 1 < len(c) <= 512 for c in request.choices)
    # max_tokens leaves room for the longest choice as the real tokenizer splits it
    longest = max(len(tokenizer(c, add_special_tokens=False).input_ids) for c in request.choices)
    assert request.max_tokens >= longest + 1
    assert grounding.library_size == 233 and len(grounding.entries) == 233


def test_choices_map_back_to_entries(mne: Library) -> None:
    grounding = grounded_cite("text", mne, n=3)
    texts = [
        " MEG and EEG Data Analysis with MNE-Python, Gramfort",
        " MNE Software for Processing MEG and EEG Data, Gramfort[END_REF]",
        " MEG and EEG Data Analysis with MNE-Python, Gramfort",  # the same choice twice
    ]
    got = grounding.suggestions(texts)
    assert [(s["key"], s["rank"]) for s in got] == [
        ("GramfortEtAl2013a", 0),
        ("GramfortEtAl2014", 1),
    ]
    assert all(s["source"] == "library" and s["verified"] for s in got)


def test_entries_that_read_the_same_share_a_choice() -> None:
    a = Entry("smith2020a", "Deep learning", "Smith", ["Smith"], "2020")
    b = Entry("smith2020b", "Deep  learning", "Smith", ["Smith"], "2021")
    c = Entry("jones", "Other", "Jones", ["Jones"], "2019")
    grounding = grounded_cite("text", Library([a, b, c]), n=3)
    assert grounding.request.choices == [" Deep learning, Smith", " Other, Jones"]
    got = grounding.suggestions([" Deep learning, Smith", " Other, Jones"])
    assert [(s["key"], s["year"], s["rank"]) for s in got] == [
        ("smith2020a", "2020", 0),
        ("smith2020b", "2021", 0),
        ("jones", "2019", 1),
    ]


def test_a_server_that_ignored_the_constraint(mne: Library) -> None:
    grounding = grounded_cite("text", mne, n=2)
    got = grounding.suggestions(["MEG and EEG data analysis with MNE Python, Gramfort", "Zzz, Q"])
    assert got[0]["key"] == "GramfortEtAl2013a" and got[0]["source"] == "library"
    assert got[1]["verified"] is False and got[1]["insert"] == "[Zzz, Q]{.unverified}"


def test_choice_text() -> None:
    assert choice_text(Entry("k", "A title", "Surname")) == " A title, Surname"
    assert choice_text(Entry("k", "A title")) == " A title"
    long = choice_text(Entry("k", "word " * 200, "Surname"))
    assert len(long) <= 512 and long.endswith(", Surname")


def test_n_is_at_most_the_number_of_choices() -> None:
    one = Library([Entry("k", "Only one", "Alone")])
    assert grounded_cite("text", one, n=5).request.n == 1
    with pytest.raises(ValueError, match="no entries"):
        grounded_cite("text", Library(), n=3)


# --- the shortlist ---------------------------------------------------------------------


def synthetic(n: int) -> Library:
    topics = ["protein folding", "graph neural", "black hole", "gene expression", "catalysis"]
    return Library(
        [
            Entry(f"k{i}", f"Study {i} of {topics[i % 5]} number {i}", f"Author{i}", [f"A{i}"])
            for i in range(n)
        ]
    )


def test_small_libraries_are_offered_whole(mne: Library) -> None:
    assert shortlist(mne, "anything", cap=2000) == list(mne)


def test_bm25_shortlist_keeps_the_relevant_entries_in_library_order() -> None:
    library = synthetic(5000)
    text = "Recent work on black hole thermodynamics, e.g. study 2 of black hole number 2"
    offered = shortlist(library, text, cap=2000, size=100)
    assert len(offered) == 100
    keys = [e.key for e in offered]
    assert "k2" in keys
    assert all("black hole" in e.title for e in offered)
    positions = [int(k[1:]) for k in keys]
    assert positions == sorted(positions)  # library order: a stable choice list
    # the request is built from the shortlist, the same way for every backend
    grounding = grounded_cite(text, library, n=3, cap=2000, size=100)
    assert len(grounding.request.choices) == 100 and grounding.library_size == 5000
    # the defaults: whole up to 2,000 entries, else the best 500
    assert len(grounded_cite(text, Library(library.entries[:2000])).request.choices) == 2000
    assert len(grounded_cite(text, library).request.choices) == 500


def test_bm25_scores() -> None:
    entries = list(synthetic(50))
    index = BM25(entries)
    assert index.top("gene expression", 3)[:3] == [3, 8, 13]
    assert index.scores("the of and") == {}  # stopwords only
    assert len(index.top("nothing matches zzz", 4)) == 4  # filled in library order


# --- formatting ------------------------------------------------------------------------


def test_citeproc_ships_the_default_style() -> None:
    assert "harvard-cite-them-right" in styles()


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("text", "Gramfort, A. et al. (2013) “MEG and EEG Data Analysis with MNE-Python”, "
                 "Frontiers in Neuroscience, 7(267), pp. 1–13."),
        ("html", "Gramfort, A. <i>et al.</i> (2013) “MEG and EEG Data Analysis with "
                 "MNE-Python”, <i>Frontiers in Neuroscience</i>, 7(267), pp. 1–13."),
        ("markdown", "Gramfort, A. *et al.* (2013) “MEG and EEG Data Analysis with "
                     "MNE-Python”, *Frontiers in Neuroscience*, 7(267), pp. 1–13."),
    ],
)  # fmt: skip
def test_format_references(mne: Library, output: str, expected: str) -> None:
    refs, problems = format_references([mne.get("GramfortEtAl2013a")], output=output)
    assert problems == []
    assert refs[0]["key"] == "GramfortEtAl2013a"
    assert refs[0]["text"].startswith(expected)


def test_format_escapes_markup() -> None:
    entry = Entry("x", "A <script>alert(1)</script> & [link](y)", "Evil", ["Evil"], "2020")
    entry.csl = {"id": "x", "type": "article", "title": entry.title,
                 "author": [{"family": "Evil"}], "issued": {"date-parts": [[2020]]}}  # fmt: skip
    html = format_references([entry], output="html")[0][0]["text"]
    assert "<script>" not in html and "&lt;script&gt;" in html
    markdown = format_references([entry], output="markdown")[0][0]["text"]
    assert "\\[link\\](y)" in markdown and "\\<script\\>" in markdown


def test_every_entry_gets_a_reference(mne: Library) -> None:
    refs, problems = format_references(list(mne))
    assert problems == []
    assert sorted(r["key"] for r in refs) == sorted(e.key for e in mne)
    odd = Entry("odd", "No CSL at all", None, [], None)
    refs, _ = format_references([odd])
    assert refs[0]["key"] == "odd" and "No CSL at all" in refs[0]["text"]


def test_unknown_style_or_format() -> None:
    with pytest.raises(FormatError, match="unknown style"):
        format_references([Entry("k", "T")], style="apa")
    with pytest.raises(FormatError, match="unknown format"):
        format_references([Entry("k", "T")], output="pdf")


def test_bm25_index_is_built_once_per_library(monkeypatch: pytest.MonkeyPatch) -> None:
    from galactica_ext.library import grounding as module

    library = synthetic(3000)
    built: list[int] = []

    def counting(entries: list[Entry]) -> BM25:
        built.append(len(entries))
        return BM25(entries)

    monkeypatch.setattr(module, "BM25", counting)
    # the server reads a new Library per request, holding the store's same entries
    first = shortlist(Library(list(library)), "black hole", cap=100)
    second = shortlist(Library(list(library)), "gene expression", cap=100)
    assert built == [3000]
    assert first != second


@pytest.mark.parametrize("diverse", [False, True])
def test_grounded_cite_in_process_suggests_library_entries(
    tiny_model: Any, mne: Library, diverse: bool
) -> None:
    # the engine's token trie over the real library's choices, real tokenizer, tiny model
    grounding = grounded_cite("Sources were estimated with MNE", mne, n=3, diverse=diverse)
    result = tiny_model.run(grounding.request)
    suggestions = grounding.suggestions(s["text"] for s in result["suggestions"])
    assert len(suggestions) == 3
    assert all(s["source"] == "library" and s["key"] in mne for s in suggestions)
    assert len({s["key"] for s in suggestions}) == 3
