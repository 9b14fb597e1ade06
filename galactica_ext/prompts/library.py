"""The science prompt library: GALACTICA prompt templates as its authors use them.

Each :class:`Template` has a name, a title and description for menus, its exact prompt form
(``{field}`` placeholders the user fills), its decoding settings and a result parser, and
cites where the form and settings come from: galai's README, ``docs/PROMPTBOOK.md`` and
notebook (paperswithcode/galai at 3a724f5), or the paper. ``tests/test_prompts_galai.py``
checks each template's token ids against galai's own string building on the real tokenizer.

    >>> from galactica_ext import prompts
    >>> prompts.build("iupac_name", smiles="CCO").prompt[:16]
    '[START_I_SMILES]'
"""

from __future__ import annotations

import re
import string
from dataclasses import asdict, dataclass
from typing import Any

from .escape import escape_sequences, escape_text
from .parsers import PARSERS
from .request import (
    EOS,
    SPAN_END_IDS,
    GenerationRequest,
    check_flags,
    check_max_tokens,
    check_penalty_alpha,
    check_sampling,
    check_seed,
    check_text,
    cut_after_lead_in,
    lead_in,
    new_document,
    sampling_temperature,
)

README = "galai README.md"
PROMPTBOOK = "galai docs/PROMPTBOOK.md"
NOTEBOOK = "galai notebooks/Introduction to Galactica Models.ipynb"

#: options every template takes (the rest of build()'s keywords are its fields)
OPTIONS = ("max_tokens", "new_doc", "temperature", "top_p", "top_k", "penalty_alpha", "seed")

_SEQUENCE = {
    "smiles": (re.compile(r"\S+"), "a SMILES string without spaces"),
    "amino": (re.compile(r"[A-Za-z]+"), "amino acid letters only (A-Z)"),
    "dna": (re.compile(r"[ACGTUNacgtun]+"), "nucleotide letters only (A, C, G, T, U, N)"),
}


@dataclass(frozen=True)
class Field:
    """A value the user fills in: ``kind`` is ``text`` or a sequence (``smiles``,
    ``amino``, ``dna``: checked, and written one character per token)."""

    name: str
    label: str
    kind: str = "text"
    required: bool = True
    example: str = ""


@dataclass(frozen=True)
class Template:
    """One GALACTICA prompt: its form, how to decode it, and how to read the result.

    ``forms`` are tried in order: the first whose fields are all filled is used (so an
    optional field can drop its part). ``lead_in``: the stop is a blank line that only counts
    once some text is out. ``task``: built by that editor task of :mod:`galactica_ext.tasks`.
    """

    name: str
    title: str
    description: str
    forms: tuple[str, ...]
    fields: tuple[Field, ...]
    source: str
    max_tokens: int
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    new_doc: bool = False
    top_p: float = 1.0
    top_k: int = 0
    penalty_alpha: float = 0.0
    lead_in: bool = False
    parser: str = "answer"
    #: what the result holds, for front ends: text, list, molecule, table, sequence, equation
    result: str = "text"
    task: str | None = None
    #: the open sequence span the prompt ends in (the result continues the user's prefix)
    continues: str | None = None

    @property
    def form(self) -> str:
        """The full prompt form, as shown to users."""
        return self.forms[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (for the server's and the sidebar's template list)."""
        data = asdict(self)
        data["form"] = self.form
        return data


def _amino(name: str, title: str, description: str, section: str, source: str) -> Template:
    return Template(
        name=name,
        title=title,
        description=description,
        forms=(f"[START_AMINO]{{sequence}}[END_AMINO] ## {section}",),
        fields=(Field("sequence", "Protein sequence", "amino", example=_PROTEIN),),
        source=source,
        max_tokens=128,
        stop=("\n\n",),
        lead_in=True,
        parser="list" if section == "Keywords" else "answer",
        result="list" if section == "Keywords" else "text",
    )


_PROTEIN = (
    "GHMQSITAGQKVISKHKNGRFYQCEVVRLTTETFYEVNFDDGSFSDNLYPEDIVSQDCLQFGPPAEGEVVQVRWTDGQVYGAKFVASHP"
    "IQMYQVEFEDGSQLVVKRDDVYTLDEELP"
)
_IUPAC_FORM = (
    "[START_I_SMILES]{smiles}[END_I_SMILES]\n\n## Chemical and Physical Properties\n\n"
    "The following are chemical properties for"
)

_TEMPLATES = (
    Template(
        name="paper",
        title="Paper from a title",
        description="The start of a paper (abstract and sections) for a title and authors.",
        forms=("Title: {title}\n\nAuthors: {authors}\n\n", "Title: {title}"),
        fields=(
            Field("title", "Title", example="Self-Supervised Learning, A Survey"),
            Field("authors", "Authors", required=False, example="John Smith"),
        ),
        source=f"{README}, Documents: generate('Title: ...\\n\\nAuthors: ...\\n\\n', "
        f"new_doc=True); without authors {PROMPTBOOK}'s 'Title: ...'",
        max_tokens=256,
        new_doc=True,
        parser="document",
    ),
    Template(
        name="wiki",
        title="Wiki-style article",
        description="An encyclopedia article on a topic, as GALACTICA's wiki documents begin.",
        forms=("# {topic}\n\n",),
        fields=(Field("topic", "Topic", example="Multi-Head Attention"),),
        source=f"{README}, Documents: generate('# Multi-Head Attention\\n\\n', new_doc=True)",
        max_tokens=256,
        new_doc=True,
        parser="document",
    ),
    Template(
        name="lecture",
        title="Lecture notes",
        description="Lecture notes on a topic, sampled (top_p 0.7) for fewer repetitions.",
        forms=("Lecture 1: {topic}\n\n",),
        fields=(Field("topic", "Topic", example="The Ising Model"),),
        source=f"{README}, Documents: generate('Lecture 1: The Ising Model\\n\\n', "
        "new_doc=True, top_p=0.7, max_length=200)",
        max_tokens=200,
        new_doc=True,
        top_p=0.7,
        parser="document",
    ),
    Template(
        name="literature_review",
        title="Literature review",
        description="A literature review with references, by contrastive search "
        "(vLLM has none: there it decodes greedily).",
        forms=("Title: A Literature Review on {topic}\n\n# Abstract\n",),
        fields=(Field("topic", "Topic", example="Alzheimer's Disease"),),
        source=f"{NOTEBOOK}, Contrastive Search: generate('Title: A Literature Review on "
        "Alzheimer's Disease\\n\\n# Abstract\\n', top_k=4, penalty_alpha=0.6, max_new_tokens=300)",
        max_tokens=300,
        top_k=4,
        penalty_alpha=0.6,
        parser="document",
    ),
    Template(
        name="entities",
        title="Entity extraction",
        description="The scientific entities an abstract mentions.",
        forms=("{abstract}\n\nWhat scientific entities are mentioned in the abstract above?\n\n",),
        fields=(Field("abstract", "Abstract"),),
        source=f"{README}, Entity extraction: TEXT + '\\n\\nWhat scientific entities are "
        "mentioned in the abstract above?\\n\\n' (answer: 'A: LaTeX equations, ...')",
        max_tokens=96,
        stop=("\n\n",),
        lead_in=True,
        parser="list",
        result="list",
    ),
    Template(
        name="question",
        title="Question answering",
        description="An answer to a question (the editor's Ask).",
        forms=("Question: {question}\n\nAnswer:",),
        fields=(Field("question", "Question", example="What is the notch signaling pathway?"),),
        source=f"{README}, Question Answering: 'Question: ...\\n\\nAnswer:'",
        max_tokens=128,
        stop=("\n\n",),
        lead_in=True,
        task="ask",
    ),
    Template(
        name="reasoning",
        title="Step-by-step reasoning",
        description="Worked reasoning in <work> and the answer after it.",
        forms=("Question: {question}\n\n<work>",),
        fields=(Field("question", "Question"),),
        source=f"{NOTEBOOK}, Step-by-Step Reasoning: 'Question: ...\\n\\n<work>' "
        "(output '...</work>\\n\\nAns: ...')",
        max_tokens=256,
        task="work",
    ),
    Template(
        name="iupac_name",
        title="IUPAC name from SMILES",
        description="The IUPAC name of a molecule, from its (isomeric) SMILES.",
        forms=(_IUPAC_FORM,),
        fields=(Field("smiles", "SMILES", "smiles", example="C(C(=O)O)N"),),
        source=f"{README}, IUPAC Name prediction: '[START_I_SMILES]C(C(=O)O)N[END_I_SMILES]"
        "\\n\\n## Chemical and Physical Properties\\n\\nThe following are chemical properties for'",
        max_tokens=128,
        stop=("\n",),
        parser="iupac_name",
    ),
    Template(
        name="molecule_properties",
        title="Properties from SMILES",
        description="Name and computed properties (weight, XLogP, donors...) of a molecule.",
        forms=(_IUPAC_FORM,),
        fields=(Field("smiles", "SMILES", "smiles", example="CC(=O)OC1=CC=CC=C1C(=O)O"),),
        source=f"{PROMPTBOOK}, SMILES: the PubChem-style page GALACTICA writes after a "
        "molecule ('The following are chemical properties for NAME.\\n\\n### Computed "
        "Properties\\n\\n| Property Name | Property Value ...'); the README's IUPAC prompt",
        max_tokens=256,
        stop=("\n\n## ",),
        parser="properties",
        result="table",
    ),
    Template(
        name="molecule",
        title="Generate a molecule",
        description="A new molecule as isomeric SMILES (optionally starting from a prefix).",
        forms=("[START_I_SMILES]{prefix}",),
        fields=(Field("prefix", "Start of the SMILES", "smiles", required=False),),
        source=f"{PROMPTBOOK}, SMILES: generate('[START_I_SMILES]', top_p=0.6, max_length=200)",
        max_tokens=200,
        stop=("[END_I_SMILES]",),
        stop_token_ids=(SPAN_END_IDS["I_SMILES"],),
        top_p=0.6,
        parser="molecule",
        result="molecule",
        continues="prefix",
    ),
    Template(
        name="reaction",
        title="Chemical reaction",
        description="The equation of a reaction described in words.",
        forms=("{description} results in the following reaction:",),
        fields=(
            Field("description", "What reacts", example="Mixing a kitchen salt with sulfuric acid"),
        ),
        source=f"{NOTEBOOK}, Stored knowledge: generate('Mixing a kitchen salt with sulfuric "
        "acid results in the following reaction:', max_new_tokens=80)",
        max_tokens=80,
        stop=("\\]",),
        parser="reaction",
        result="equation",
    ),
    _amino(
        "protein_keywords",
        "Protein keywords",
        "UniProt-style keywords for a protein sequence.",
        "Keywords",
        f"{README}, Predict Protein Annotations: '[START_AMINO]...[END_AMINO] ## Keywords', "
        "max_length=200",
    ),
    _amino(
        "protein_description",
        "Protein function",
        "A description of a protein's function, from its sequence.",
        "Function",
        f"the {README}'s keyword form with UniProt's '## Function' section, as BAAI's OPI "
        "GALACTICA baseline prompts it ('[START_AMINO]...[END_AMINO] ## Function')",
    ),
    Template(
        name="dna",
        title="Continue a DNA sequence",
        description="The continuation of a DNA sequence, one nucleotide per token.",
        forms=("[START_DNA]{sequence}",),
        fields=(Field("sequence", "DNA sequence", "dna", example="ATGGCGTTAGC"),),
        source=f"{NOTEBOOK}, Tokenization: [START_DNA]/[END_DNA] mark DNA, read one character "
        "per token (galai's escape_custom_split_sequence); the paper, section 3.1",
        max_tokens=128,
        stop=("[END_DNA]",),
        stop_token_ids=(SPAN_END_IDS["DNA"],),
        parser="sequence",
        result="sequence",
        continues="sequence",
    ),
)

TEMPLATES: dict[str, Template] = {t.name: t for t in _TEMPLATES}


def get(name: str) -> Template:
    """The template called ``name``; ValueError listing the names otherwise."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(
            f"unknown prompt template {name!r}: use one of {', '.join(TEMPLATES)}"
        ) from None


def _placeholders(form: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(form) if name]


def _check_value(template: Template, spec: Field, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(
            f"{template.name}: {spec.name} must be a string, got {type(value).__name__}"
        )
    value = value.strip()
    if spec.kind in _SEQUENCE and value:
        pattern, accepted = _SEQUENCE[spec.kind]
        if "[START_" in value or "[END_" in value or not pattern.fullmatch(value):
            raise ValueError(f"{template.name}: {spec.name}={value!r} is not valid: {accepted}")
    return value


def fill(name: str, text: str | None = None, **values: Any) -> str:
    """The template's prompt with the user's values, as a front end shows it for editing
    (before escaping). ``text`` fills the first field."""
    template = get(name)
    return _render(template, _values(template, text, values))


def _render(template: Template, values: dict[str, str]) -> str:
    for form in template.forms:
        if all(values.get(key) for key in _placeholders(form)):
            return form.format(**values)
    return template.forms[-1].format(**values)


def _values(template: Template, text: str | None, given: dict[str, Any]) -> dict[str, str]:
    names = [f.name for f in template.fields]
    unknown = set(given) - set(names)
    if unknown:
        raise ValueError(
            f"{template.name}: unknown field(s) {', '.join(sorted(unknown))}; "
            f"it takes {', '.join(names)} and the options {', '.join(OPTIONS)}"
        )
    given = dict(given)
    if text is not None:
        main = template.fields[0].name
        if main in given:
            raise ValueError(f"{template.name}: give {main} once (as the text or by name)")
        given[main] = text
    values: dict[str, str] = {}
    for spec in template.fields:
        value = _check_value(template, spec, given.get(spec.name, ""))
        if spec.required and not value:
            raise ValueError(
                f"{template.name}: {spec.name} is empty: give the {spec.label.lower()}"
            )
        values[spec.name] = value
    return values


def _escaped_prompt(template: Template, values: dict[str, str]) -> str:
    """The filled form, escaped: free text on its own first (so an open span in it never
    swallows the rest of the form), then the form's own spans."""
    escaped = {
        spec.name: values[spec.name] if spec.kind in _SEQUENCE else escape_text(values[spec.name])
        for spec in template.fields
    }
    return escape_sequences(_render(template, escaped))


def build(
    name: str, text: str | None = None, *, prompt: str | None = None, **values: Any
) -> GenerationRequest:
    """The request of template ``name``: ``text`` fills its first field, other fields by
    name; the options (``max_tokens``, ``new_doc``, ``top_p``...) override its decoding.
    ``prompt``: an edited filled template to run instead of the fields (escaped as a whole)."""
    template = get(name)
    options = {k: values.pop(k) for k in OPTIONS if k in values}
    if prompt is not None:
        if text or values:
            raise ValueError(f"{name}: give the prompt or the fields, not both")
        filled, filled_values = escape_sequences(check_text(prompt, "prompt")), {}
    else:
        filled_values = _values(template, text, values)
        filled = _escaped_prompt(template, filled_values)
    if template.task is not None:
        return _task_request(template, filled_values, filled, options)
    max_tokens = check_max_tokens(options.get("max_tokens", template.max_tokens))
    top_p = options.get("top_p", template.top_p)
    top_k = options.get("top_k", template.top_k)
    penalty_alpha = check_penalty_alpha(options.get("penalty_alpha", template.penalty_alpha))
    new_doc = options.get("new_doc", template.new_doc)
    check_flags(new_doc=new_doc)
    temperature = options.get("temperature")
    if temperature is None and penalty_alpha > 0:
        temperature = 0.0  # contrastive search is deterministic (galai passes no do_sample)
    temperature = sampling_temperature(temperature, top_p, top_k)
    check_sampling(temperature, top_p, top_k, 1)
    return GenerationRequest(
        task=name,
        prompt=new_document(filled, new_doc),
        max_tokens=max_tokens,
        stop=list(template.stop),
        stop_token_ids=list(template.stop_token_ids),
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        penalty_alpha=penalty_alpha,
        seed=check_seed(options.get("seed")),
        min_tokens=lead_in(max_tokens) if template.lead_in else 0,
        suffix=filled_values.get(template.continues or "", ""),
    )


def _task_request(
    template: Template, values: dict[str, str], filled: str, options: dict[str, Any]
) -> GenerationRequest:
    """Templates that are editor tasks (``ask``, ``work``) are built by the task."""
    from .. import tasks

    accepted = {k: options.pop(k) for k in ("max_tokens", "new_doc") if k in options}
    if options:
        raise ValueError(f"{template.name}: takes only max_tokens and new_doc as options")
    builder = getattr(tasks, template.task or "")
    if values:
        return builder(values[template.fields[0].name], **accepted)
    request = builder("(edited)", **accepted)  # an edited prompt: the task's decoding
    request.prompt = new_document(filled, accepted.get("new_doc", False))
    return request


def _cut(raw: str, stops: list[str]) -> str:
    found = [at for at in (raw.find(stop) for stop in stops) if at != -1]
    return raw[: min(found)] if found else raw


def parse(request: GenerationRequest, outputs: list[str]) -> dict[str, Any]:
    """The template's result from the raw continuations of ``request`` (the first one)."""
    template = get(request.task)
    stops = [*request.stop, EOS]
    raw = outputs[0]
    body = cut_after_lead_in(raw, stops)[1] if template.lead_in else _cut(raw, stops)
    if template.continues:  # the result continues the user's start of the sequence
        body = request.suffix + body
    result = PARSERS[template.parser](body)
    result["template"] = template.name
    return result
