"""GALACTICA's prompt language: sequence escaping, generation requests, and the science
prompt library (:mod:`.library`). The six editor tasks live in :mod:`galactica_ext.tasks`.

    >>> from galactica_ext import prompts
    >>> request = prompts.build("iupac_name", smiles="CCO")
    >>> [t.name for t in prompts.templates()][:3]
    ['paper', 'wiki', 'lecture']
"""

from __future__ import annotations

from .escape import SPLIT_MARKER, escape_sequences, unescape
from .library import TEMPLATES, Field, Template, build, fill, get, parse
from .request import GenerationRequest

__all__ = [
    "SPLIT_MARKER",
    "TEMPLATES",
    "Field",
    "GenerationRequest",
    "Template",
    "build",
    "catalog",
    "escape_sequences",
    "fill",
    "get",
    "listing",
    "parse",
    "templates",
    "unescape",
]


def templates() -> list[Template]:
    """Every template of the library, in menu order."""
    return list(TEMPLATES.values())


def catalog() -> list[dict]:
    """Every template as JSON-ready data (name, title, description, form, fields, decoding,
    source), for a server route and the sidebar's prompt library."""
    return [t.to_dict() for t in TEMPLATES.values()]


def listing() -> str:
    """The library as a few lines of text (``%galactica prompts``)."""
    width = max(len(name) for name in TEMPLATES)
    lines = [f"  {t.name:<{width}}  {t.title}: {t.description}" for t in TEMPLATES.values()]
    return "\n".join(lines)
