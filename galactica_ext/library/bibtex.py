"""BibTeX and BibLaTeX files: read with bibtexparser v2, written back for export.

bibtexparser's splitter is fault tolerant: a malformed entry becomes a failed block with its
line and the rest of the file still loads. Fields are LaTeX-decoded
(:class:`~.latex.LatexFieldDecoding`), names split with bibtexparser's name parser, and each
entry is mapped to a CSL-JSON item as Pandoc and citeproc-js map BibTeX.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import bibtexparser
from bibtexparser.exceptions import BlockAbortedException
from bibtexparser.middlewares.names import (
    parse_single_name_into_parts,
    split_multiple_persons_names,
)
from bibtexparser.model import DuplicateBlockKeyBlock, ParsingFailedBlock
from bibtexparser.model import Entry as BibEntry

from .latex import RAW_FIELDS, LatexFieldDecoding, decode_latex
from .model import Entry, Problem

__all__ = ["EXPORT_MARK", "entries_to_bibtex", "parse_bibtex"]

# the splitter logs each malformed block; we report them as problems (no stderr noise in
# a kernel without logging set up; a server's own logging still sees them)
logging.getLogger("bibtexparser").addHandler(logging.NullHandler())

#: BibTeX/BibLaTeX entry type -> CSL type
CSL_TYPES = {
    "article": "article-journal",
    "book": "book",
    "mvbook": "book",
    "booklet": "pamphlet",
    "inbook": "chapter",
    "incollection": "chapter",
    "inproceedings": "paper-conference",
    "conference": "paper-conference",
    "proceedings": "book",
    "manual": "report",
    "mastersthesis": "thesis",
    "phdthesis": "thesis",
    "thesis": "thesis",
    "techreport": "report",
    "report": "report",
    "unpublished": "manuscript",
    "online": "webpage",
    "www": "webpage",
    "electronic": "webpage",
    "software": "software",
    "dataset": "dataset",
    "patent": "patent",
    "misc": "article",
}
#: BibTeX field -> CSL variable (strings copied as they are)
CSL_FIELDS = {
    "journal": "container-title",
    "journaltitle": "container-title",
    "booktitle": "container-title",
    "publisher": "publisher",
    "institution": "publisher",
    "school": "publisher",
    "organization": "publisher",
    "address": "publisher-place",
    "location": "publisher-place",
    "volume": "volume",
    "number": "issue",
    "pages": "page",
    "edition": "edition",
    "series": "collection-title",
    "isbn": "ISBN",
    "issn": "ISSN",
    "note": "note",
    "abstract": "abstract",
    "howpublished": "medium",
}
_YEAR = re.compile(r"\b(\d{4})\b")
_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", re.IGNORECASE)
_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
)}  # fmt: skip


def parse_bibtex(text: str, source: str) -> tuple[list[Entry], list[Problem]]:
    """The entries of a BibTeX/BibLaTeX text and the problems met (never raises on bad data).

    A malformed entry is reported with its 1-based line; a duplicate key keeps the first
    entry and reports the others.
    """
    bib = bibtexparser.parse_string(text, append_middleware=[LatexFieldDecoding()])
    problems = [_problem(block, source) for block in bib.failed_blocks]
    entries: list[Entry] = []
    for block in bib.entries:
        try:
            entries.append(_entry(block, source))
        except Exception as err:  # one odd entry never stops the rest
            line = block.start_line + 1 if block.start_line is not None else None
            problems.append(Problem(source, f"entry {block.key!r} unreadable: {err}", line))
    return entries, problems


def _problem(block: ParsingFailedBlock, source: str) -> Problem:
    line = block.start_line + 1 if block.start_line is not None else None
    if isinstance(block, DuplicateBlockKeyBlock):
        return Problem(
            source, f"duplicate key {block.key!r}: kept the first entry, ignored this one",
            line, block.key,
        )  # fmt: skip
    error = block.error
    if isinstance(error, BlockAbortedException):
        reason = " ".join(str(error.abort_reason).split())
        message = f"malformed entry skipped ({reason})"
    else:
        message = f"malformed entry skipped ({error or type(error).__name__})"
    head = (block.raw or "").split("\n", 1)[0].strip()[:80]
    return Problem(source, f"{message}: {head}" if head else message, line)


def _fields(block: BibEntry) -> dict[str, str]:
    """The entry's fields by lower-case name, whitespace collapsed, empty ones dropped
    (the first of a repeated field wins)."""
    out: dict[str, str] = {}
    for item in block.fields:
        if item.value is None:
            continue
        value = " ".join(str(item.value).split())
        if value:
            out.setdefault(item.key.lower(), value)
    return out


def _simple_name(name: str) -> tuple[str, str, str] | None:
    """(von, last, first) of a name without braces or macros, BibTeX's rules; else None."""
    if "{" in name or "\\" in name or name.count(",") > 1:
        return None
    if "," in name:
        last_part, first = (p.strip() for p in name.split(","))
        words = last_part.split()
        von = []
        while len(words) > 1 and words[0][:1].islower():
            von.append(words.pop(0))
        return " ".join(von), " ".join(words), first
    words = name.split()
    if not words:
        return None
    start = next((i for i, w in enumerate(words[:-1]) if w[:1].islower()), None)
    if start is None:
        return "", words[-1], " ".join(words[:-1])
    end = start
    while end < len(words) - 1 and words[end][:1].islower():
        end += 1
    return " ".join(words[start:end]), " ".join(words[end:]), " ".join(words[:start])


def _names(raw: str | None) -> list[dict[str, str]]:
    """BibTeX names (``Last, First and ...``) as CSL names, LaTeX decoded."""
    if not raw:
        return []
    names = []
    for name in split_multiple_persons_names(raw):
        if name.strip().lower() == "others":
            continue
        simple = _simple_name(name)
        if simple is not None:
            particle, family, given = (decode_latex(part) for part in simple)
            suffix = ""
        else:
            parts = parse_single_name_into_parts(name, strict=False)
            family = decode_latex(" ".join(parts.last))
            given = decode_latex(" ".join(parts.first))
            particle = decode_latex(" ".join(parts.von))
            suffix = decode_latex(" ".join(parts.jr))
        if not family and not given:
            continue
        if name.strip().startswith("{") and name.strip().endswith("}") and not given:
            names.append({"literal": family})  # {World Health Organization}
            continue
        csl = {"family": family or given}
        if given and family:
            csl["given"] = given
        if particle:
            csl["non-dropping-particle"] = particle
        if suffix:
            csl["suffix"] = suffix
        names.append(csl)
    return names


def _issued(fields: dict[str, str]) -> tuple[str | None, dict[str, Any] | None]:
    date = fields.get("date", "")
    year = fields.get("year", "")
    found = _YEAR.search(year) or _YEAR.search(date)
    if not found:
        return None, ({"literal": year or date} if (year or date) else None)
    parts: list[int] = [int(found.group(1))]
    month = fields.get("month", "").strip().lower()[:3]
    if month.isdigit() and 1 <= int(month) <= 12:
        parts.append(int(month))
    elif month in _MONTHS:
        parts.append(_MONTHS[month])
    return found.group(1), {"date-parts": [parts]}


def clean_doi(value: str | None) -> str | None:
    """A DOI without its resolver prefix (``https://doi.org/``, ``doi:``)."""
    if not value:
        return None
    return _DOI_PREFIX.sub("", value.strip()) or None


def _entry(block: BibEntry, source: str) -> Entry:
    fields = _fields(block)
    title = fields.get("title", "")
    authors = _names(fields.get("author"))
    editors = _names(fields.get("editor"))
    year, issued = _issued(fields)
    doi = clean_doi(fields.get("doi"))
    url = fields.get("url")
    kind = block.entry_type.lower()
    csl: dict[str, Any] = {"id": block.key, "type": CSL_TYPES.get(kind, "article")}
    read = {"title": title, "author": authors, "editor": editors, "issued": issued}
    csl.update((k, v) for k, v in {**read, "DOI": doi, "URL": url}.items() if v)
    if kind in ("phdthesis", "mastersthesis"):
        csl["genre"] = "PhD thesis" if kind == "phdthesis" else "Master's thesis"
    for name, variable in CSL_FIELDS.items():
        value = fields.get(name)
        if value and variable not in csl:
            csl[variable] = value
    surnames = [a.get("family") or a.get("literal", "") for a in authors or editors]
    return Entry(
        key=block.key,
        title=title,
        author=surnames[0] if surnames else None,
        authors=surnames,
        year=year,
        doi=doi,
        url=url,
        csl=csl,
        source=source,
        bibtex={"type": kind, "fields": dict(block.get_parser_metadata(RAW_FIELDS) or [])},
    )


# ------------------------------------------------------------------------------ writing


def _braced(value: str) -> str:
    # balanced braces only: an unbalanced value is written with its braces escaped
    depth = 0
    for ch in value:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            break
    if depth != 0:
        value = value.replace("{", "\\{").replace("}", "\\}")
    return "{" + value + "}"


def _bibtex_names(names: list[dict[str, Any]]) -> str:
    out = []
    for name in names:
        if "literal" in name:
            out.append("{" + str(name["literal"]) + "}")
            continue
        family = " ".join(x for x in (name.get("non-dropping-particle"), name.get("family")) if x)
        rest = ", ".join(x for x in (name.get("suffix"), name.get("given")) if x)
        out.append(f"{family}, {rest}" if rest else family)
    return " and ".join(out)


_TYPE_BACK = {
    "article-journal": "article",
    "paper-conference": "inproceedings",
    "chapter": "incollection",
    "book": "book",
    "thesis": "phdthesis",
    "report": "techreport",
    "manuscript": "unpublished",
    "webpage": "online",
}
_FIELDS_BACK = {
    "publisher": "publisher",
    "publisher-place": "address",
    "volume": "volume",
    "issue": "number",
    "page": "pages",
    "edition": "edition",
    "ISBN": "isbn",
    "ISSN": "issn",
}


def _from_csl(entry: Entry) -> tuple[str, dict[str, str]]:
    csl = entry.csl
    kind = _TYPE_BACK.get(str(csl.get("type")), "misc")
    fields: dict[str, str] = {}
    if entry.title:
        fields["title"] = "{" + entry.title + "}"
    for role in ("author", "editor"):
        if csl.get(role):
            fields[role] = _bibtex_names(csl[role])
    if csl.get("container-title"):
        container = str(csl["container-title"])
        fields["journal" if kind == "article" else "booktitle"] = container
    if entry.year:
        fields["year"] = entry.year
    for variable, name in _FIELDS_BACK.items():
        if csl.get(variable):
            fields[name] = str(csl[variable])
    if entry.doi:
        fields["doi"] = entry.doi
    if entry.url:
        fields["url"] = entry.url
    return kind, fields


def entry_to_bibtex(entry: Entry) -> str:
    """One entry as BibTeX: the fields as read from a .bib file, else built from its CSL."""
    if entry.bibtex:
        kind = entry.bibtex["type"]
        fields = {k: str(v) for k, v in entry.bibtex["fields"].items()}
    else:
        kind, fields = _from_csl(entry)
    key = re.sub(r"[\s,{}]", "_", entry.key)
    body = ",\n".join(f"  {name} = {_braced(value)}" for name, value in fields.items())
    return f"@{kind}{{{key},\n{body}\n}}\n"


#: the first line of a .bib our export writes (a BibTeX comment), so discovery knows it
EXPORT_MARK = "% exported by galactica-ext"


def entries_to_bibtex(entries: list[Entry], notebook: str | None = None) -> str:
    """Several entries as one BibTeX text (what the export writes); with ``notebook``, a first
    line ``% exported by galactica-ext from <notebook>`` marks it as an export."""
    text = "\n".join(entry_to_bibtex(e) for e in entries)
    return f"{EXPORT_MARK} from {notebook}\n\n{text}" if notebook else text
