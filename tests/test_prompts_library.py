"""The science prompt library: building by name, fields and options, result parsers (on the
outputs galai's documents show), and the RDKit helper."""

from __future__ import annotations

import json
import sys

import pytest

from galactica_ext import prompts, tasks
from galactica_ext.prompts import chem
from galactica_ext.prompts.escape import SPLIT_MARKER as M

PROTEIN = "GHMQSITAGQKVISKHKNGRFYQCEVVRLTTETFYEVNFDDG"


def test_every_template_describes_itself_and_cites_a_source() -> None:
    listed = prompts.templates()
    assert [t.name for t in listed] == list(prompts.TEMPLATES)
    for template in listed:
        data = template.to_dict()
        json.dumps(data)  # JSON-ready for the server and the sidebar
        assert data["title"] and data["description"] and data["form"] == template.forms[0]
        assert "galai" in template.source or "OPI" in template.source
        assert template.fields and template.max_tokens >= 1
    assert "iupac_name" in prompts.listing() and "Literature review" in prompts.listing()


def test_build_by_name_through_tasks_and_prompts() -> None:
    direct = prompts.build("iupac_name", smiles="CCO")
    through = tasks.build("iupac_name", "CCO")  # what the server and clients call
    assert direct == through and direct.task == "iupac_name"
    assert direct.prompt.startswith(f"[START_I_SMILES]{M}C{M}C{M}O{M}[END_I_SMILES]\n\n")
    assert direct.prompt.endswith("The following are chemical properties for")
    with pytest.raises(ValueError, match="iupac_name"):
        tasks.build("no-such-template", "x")


def test_fill_shows_the_form_unescaped_and_an_edited_prompt_runs() -> None:
    filled = prompts.fill("protein_keywords", PROTEIN)
    assert filled == f"[START_AMINO]{PROTEIN}[END_AMINO] ## Keywords"
    edited = filled.replace("Keywords", "Function")
    request = prompts.build("protein_keywords", prompt=edited)
    assert request.prompt.endswith("[END_AMINO] ## Function") and M in request.prompt
    assert request.stop == ["\n\n"] and request.min_tokens == 3
    question = prompts.build("question", prompt="Question: Why?\n\nAnswer:")
    assert question.task == "ask" and question.prompt == "Question: Why?\n\nAnswer:"


def test_an_optional_field_drops_its_part_of_the_form() -> None:
    assert prompts.fill("paper", "Graph Networks") == "Title: Graph Networks"
    assert prompts.fill("paper", "Graph Networks", authors="Ada Lovelace") == (
        "Title: Graph Networks\n\nAuthors: Ada Lovelace\n\n"
    )
    assert prompts.build("molecule").prompt == "[START_I_SMILES]"
    assert prompts.build("molecule", prefix="CC").prompt == f"[START_I_SMILES]{M}C{M}C"


@pytest.mark.parametrize(
    ("name", "values", "message"),
    [
        ("iupac_name", {"smiles": "C C"}, "SMILES string without spaces"),
        ("iupac_name", {"smiles": "CC[END_I_SMILES]x"}, "not valid"),
        ("protein_keywords", {"sequence": "MKT1"}, "amino acid letters"),
        ("dna", {"sequence": "ACGX"}, "nucleotide letters"),
        ("wiki", {"topic": "  "}, "topic is empty"),
        ("wiki", {"subject": "x"}, "unknown field"),
        ("wiki", {"topic": "x", "max_tokens": 0}, "max_tokens"),
        ("wiki", {"topic": "x", "top_p": 2.0}, "top_p"),
        ("literature_review", {"topic": "x", "penalty_alpha": -1.0}, "penalty_alpha"),
        ("question", {"question": "x", "top_p": 0.5}, "only max_tokens and new_doc"),
    ],
)
def test_bad_fields_and_options_say_what_is_accepted(name: str, values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        prompts.build(name, **values)


def test_options_override_the_templates_decoding() -> None:
    wiki = prompts.build("wiki", "Entropy", max_tokens=50, new_doc=False, top_p=0.8)
    assert (wiki.max_tokens, wiki.top_p, wiki.temperature) == (50, 0.8, 1.0)
    assert not wiki.prompt.startswith("</s>")
    assert prompts.build("wiki", "Entropy").prompt == "</s># Entropy\n\n"
    greedy = prompts.build("lecture", "Entropy", temperature=0.0)
    assert greedy.temperature == 0.0 and greedy.top_p == 0.7


def test_free_text_with_an_open_span_keeps_the_question_whole() -> None:
    request = prompts.build("entities", "We study [START_AMINO]MKT")
    assert request.prompt.endswith(
        "\n\nWhat scientific entities are mentioned in the abstract above?\n\n"
    )


# ---- parsers, on the outputs galai's README, PROMPTBOOK and notebook show ------------------


def _parse(name: str, raw: str, **values: str) -> dict:
    request = prompts.build(name, **values) if values else prompts.build(name, "x")
    return tasks.parse(request, [raw])


def test_entities() -> None:
    raw = "A: LaTeX equations, mathematical MMLU, MATH, PubMedQA, MedMCQA, BIG-bench</s>"
    result = _parse("entities", raw)
    assert result["items"] == [
        "LaTeX equations", "mathematical MMLU", "MATH", "PubMedQA", "MedMCQA", "BIG-bench",
    ]  # fmt: skip
    assert result["template"] == "entities" and result["truncated"] is False


def test_protein_keywords_after_a_blank_line() -> None:
    raw = (
        "\n\nCytoplasm, Methyltransferase, rRNA processing, S-adenosyl-L-methionine, "
        "Transferase\n\n## References\n\nQuestion: What are some articles"
    )
    result = _parse("protein_keywords", raw, sequence=PROTEIN)
    assert result["items"][0] == "Cytoplasm" and result["items"][-1] == "Transferase"
    assert len(result["items"]) == 5


def test_iupac_name() -> None:
    result = _parse("iupac_name", " 2-amino-2-oxo-acetic acid.\n\n### Computed", smiles="CCO")
    assert result["name"] == "2-amino-2-oxo-acetic acid"


def test_molecule_properties_table() -> None:
    raw = (
        " 3-[[3-(4-ethylphenyl)-3-oxo-propanoyl]amino]-N-(4-sulfamoylphenyl)benzamide.\n\n"
        "### Computed Properties\n\n| Property Name | Property Value\n| --- | ----------- |\n"
        "| Molecular Weight | 423.5\n| XLogP3-AA Log P | 3.2\n| Hydrogen Bond Donor Count | 3\n"
        "| Hydrogen Bond Acceptor Count \n\n## Safety"
    )
    result = _parse("molecule_properties", raw, smiles="CCO")
    assert result["name"].endswith("(4-sulfamoylphenyl)benzamide")
    assert result["properties"] == {
        "Molecular Weight": "423.5",
        "XLogP3-AA Log P": "3.2",
        "Hydrogen Bond Donor Count": "3",
    }


def test_generated_molecule_is_checked() -> None:
    pytest.importorskip("rdkit")
    raw = (
        "CCC1=CC=C(C=C1)C(=O)NC2=CC=CC(=C2)C(=O)NC3=CC=C(C=C3)S(=O)(=O)N[END_I_SMILES]\n\n"
        "### Molecular Formula\n\nC22H21N3O4S"
    )
    result = _parse("molecule", raw, prefix="")
    assert result["smiles"].endswith("S(=O)(=O)N")
    assert result["check"]["valid"] is True
    assert result["check"]["formula"] == "C22H21N3O4S"  # what GALACTICA wrote next to it
    continued = tasks.parse(prompts.build("molecule", prefix="CC"), [f"{M}O[END_I_SMILES]"])
    assert continued["smiles"] == "CCO"
    bad = _parse("molecule", "C1CC(", prefix="")
    assert bad["check"]["valid"] is False and "does not parse" in bad["check"]["error"]


def test_reaction_equation() -> None:
    raw = "\n\n\\[ \\ce{NaCl}(aq)+\\ce{H2SO4}(aq)⟶\\ce{NaHSO4}(aq)+\\ce{HCl}(g) "
    result = _parse("reaction", raw + "\\]\n\nThe hydrogen", description="Salt and acid")
    assert result["latex"] == "\\ce{NaCl}(aq)+\\ce{H2SO4}(aq)⟶\\ce{NaHSO4}(aq)+\\ce{HCl}(g)"


def test_document_with_references() -> None:
    raw = (
        "\n Corticosteroids are steroid hormones.[START_REF] Corticosteroids: Mechanisms of "
        "Action in Health and Disease, Ramamoorthy[END_REF]\n\n</s>next"
    )
    result = _parse("wiki", raw, topic="Corticosteroid")
    assert result["text"].startswith("Corticosteroids are steroid hormones.")
    assert result["references"] == [
        "Corticosteroids: Mechanisms of Action in Health and Disease, Ramamoorthy"
    ]


def test_dna_continues_the_sequence() -> None:
    result = tasks.parse(prompts.build("dna", "ATG"), [f"{M}G{M}C[END_DNA] more"])
    assert result["sequence"] == "ATGGC"


def test_question_and_reasoning_templates_are_the_tasks() -> None:
    ask = prompts.build("question", "Why?")
    assert ask == tasks.ask("Why?")
    work = prompts.build("reasoning", "2+2?", max_tokens=64)
    assert work == tasks.work("2+2?", max_tokens=64)


# ---- RDKit ------------------------------------------------------------------------------


def test_smiles_check_and_drawing() -> None:
    pytest.importorskip("rdkit")
    ok = chem.check_smiles("OCC")
    assert ok == {"valid": True, "canonical": "CCO", "formula": "C2H6O", "error": None}
    svg = chem.smiles_svg("CC(=O)OC1=CC=CC=C1C(=O)O")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    valence = chem.check_smiles("C(C)(C)(C)(C)C")  # five bonds on a carbon
    assert valence["valid"] is False and "not a valid molecule" in valence["error"]
    with pytest.raises(ValueError, match="not valid SMILES syntax"):
        chem.smiles_svg("C1CC(")


def test_without_rdkit_the_check_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rdkit", None)  # as if not installed: import fails
    assert chem.rdkit_available() is False
    result = chem.check_smiles("CCO")
    assert result["valid"] is None and "RDKit is not installed" in result["error"]
    with pytest.raises(ValueError, match="galactica_ext\\[chem\\]"):
        chem.smiles_svg("CCO")


def test_catalog_is_json_for_front_ends() -> None:
    catalog = json.loads(json.dumps(prompts.catalog()))
    assert [entry["name"] for entry in catalog] == list(prompts.TEMPLATES)
    review = next(e for e in catalog if e["name"] == "literature_review")
    assert (review["top_k"], review["penalty_alpha"]) == (4, 0.6)
    assert review["fields"][0]["name"] == "topic"
