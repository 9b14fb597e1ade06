"""References formatted by a real CSL processor: citeproc-py and the style it ships.

citeproc-py bundles one style, ``harvard-cite-them-right`` (:data:`DEFAULT_STYLE`); a path to
any ``.csl`` file works too. Output is plain text, HTML (every value escaped first: citeproc-py
does not escape) or Markdown. An entry citeproc-py cannot format is written as
"Surname (Year) Title." and reported, so one odd entry never loses the list.
"""

from __future__ import annotations

import copy
import html
import re
import types
import warnings
from pathlib import Path
from typing import Any

from .model import Entry, Problem

__all__ = ["DEFAULT_STYLE", "FORMATS", "FormatError", "format_references", "styles"]

DEFAULT_STYLE = "harvard-cite-them-right"
FORMATS = ("text", "html", "markdown")
_NAME_KEYS = {
    "family", "given", "literal", "suffix", "dropping-particle", "non-dropping-particle",
}  # fmt: skip
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")


class FormatError(ValueError):
    """A style that does not exist or a format that is not offered."""


def styles() -> list[str]:
    """The style names citeproc-py ships."""
    from citeproc import STYLES_PATH

    return sorted(p.stem for p in Path(STYLES_PATH).glob("*.csl"))


def _md_escape(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def _markdown_formatter() -> types.ModuleType:
    module = types.ModuleType("galactica_markdown_formatter")

    def wrap(mark: str):
        return lambda text: f"{mark}{text}{mark}" if str(text).strip() else str(text)

    module.preformat = _md_escape
    module.Italic = module.Oblique = wrap("*")
    module.Bold = wrap("**")
    for name in ("Light", "Underline", "SmallCaps"):
        setattr(module, name, str)
    module.Superscript = lambda text: f"<sup>{text}</sup>"
    module.Subscript = lambda text: f"<sub>{text}</sub>"
    return module


def _escaped(value: Any, escape) -> Any:
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, list):
        return [_escaped(v, escape) for v in value]
    if isinstance(value, dict):
        return {k: (v if k in ("date-parts",) else _escaped(v, escape)) for k, v in value.items()}
    return value


def _clean_item(entry: Entry, ref_id: str, escape=None) -> dict[str, Any]:
    item = copy.deepcopy(entry.csl) or {"type": "article", "title": entry.title}
    for role in ("author", "editor", "translator", "container-author"):
        names = item.get(role)
        if isinstance(names, list):
            item[role] = [
                {k: v for k, v in n.items() if k in _NAME_KEYS} for n in names
                if isinstance(n, dict)
            ]  # fmt: skip
    for key in ("issued", "accessed"):
        if key in item and not isinstance(item[key], dict):
            item.pop(key)
    item = {k: v for k, v in item.items() if not k.startswith("_") and v not in (None, "", [])}
    if escape is not None:
        item = {k: (_escaped(v, escape) if k not in ("issued", "accessed") else v)
                for k, v in item.items()}  # fmt: skip
    item["id"] = ref_id  # citeproc-py lower-cases ids: index them instead
    return item


def _fallback(entry: Entry) -> str:
    who = entry.author or "Anon."
    year = entry.year or "n.d."
    return f"{who} ({year}) {entry.title}."


def _style(style: str):
    from citeproc import CitationStylesStyle

    path = Path(style)
    if style.endswith(".csl") and not path.is_file():
        raise FormatError(f"no CSL style file at {style}")
    if not style.endswith(".csl") and style not in styles():
        raise FormatError(f"unknown style {style!r}: use {', '.join(styles())} or a .csl file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CitationStylesStyle(str(path) if style.endswith(".csl") else style, validate=False)


def format_references(
    entries: list[Entry], style: str = DEFAULT_STYLE, output: str = "text"
) -> tuple[list[dict[str, str]], list[Problem]]:
    """The bibliography of ``entries`` in the style's order: ``[{"key", "text"}]``."""
    from citeproc import Citation, CitationItem, CitationStylesBibliography, formatter
    from citeproc.source.json import CiteProcJSON

    if output not in FORMATS:
        raise FormatError(f"unknown format {output!r}: use {', '.join(FORMATS)}")
    if not entries:
        return [], []
    csl_style = _style(style)
    fmt = {"text": formatter.plain, "html": formatter.html, "markdown": _markdown_formatter()}
    escape = {"html": lambda s: html.escape(s, quote=False), "markdown": _md_escape}.get(output)
    problems: list[Problem] = []
    items, keys = [], {}
    for index, entry in enumerate(entries):
        ref_id = f"ref{index}"
        try:
            CiteProcJSON([_clean_item(entry, ref_id)])  # fails here on a bad item
        except Exception as err:
            problems.append(Problem(entry.source, f"cannot format {entry.key!r}: {err}"))
            continue
        items.append(_clean_item(entry, ref_id, escape))
        keys[ref_id] = entry
    out: list[dict[str, str]] = []
    if items:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bibliography = CitationStylesBibliography(csl_style, CiteProcJSON(items), fmt[output])
            for ref_id in keys:
                bibliography.register(Citation([CitationItem(ref_id)]))
            bibliography.sort()
            try:
                rendered = [str(item) for item in bibliography.bibliography()]
            except Exception as err:
                problems.append(Problem("", f"the CSL processor failed ({err}): plain list"))
                rendered = [_fallback(keys[k]) for k in bibliography.keys]
        for ref_id, text in zip(bibliography.keys, rendered, strict=False):
            out.append({"key": keys[ref_id].key, "text": " ".join(text.split())})
    for entry in entries:
        if entry.key not in {o["key"] for o in out}:
            text = _fallback(entry)
            out.append({"key": entry.key, "text": escape(text) if escape else text})
    return out, problems
