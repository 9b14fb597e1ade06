"""CSL items: CSL-JSON and CSL-YAML files (Zotero/Better BibTeX exports, Pandoc) and the
items jupyterlab-citation-manager keeps in a notebook's metadata.

CSL-JSON is a list of items (``id``, ``type``, ``title``, ``author: [{family, given}]``,
``issued: {date-parts: [[2017]]}``, ``DOI``, ``URL``); CSL-YAML is the same as YAML, either a
list or Pandoc's ``references:`` mapping. citation-manager stores
``metadata["citation-manager"]["items"]`` as ``{source: {id: item}}`` (by reference source,
e.g. ``zotero``); a flat ``{id: item}`` is read too.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from .bibtex import clean_doi
from .latex import decode_latex
from .model import Entry, Problem

__all__ = ["entry_from_csl", "parse_csl_json", "parse_csl_yaml", "parse_notebook_items"]

_YEAR = re.compile(r"\b(\d{4})\b")
_TAGS = re.compile(r"<[^>]+>")  # CSL rich text: <i>, <sup>, <span class="nocase">


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):  # some exports give container-title as a list
        value = value[0] if value else ""
    return " ".join(_TAGS.sub("", str(value)).split())


def _surname(name: Any) -> str:
    if isinstance(name, dict):
        return _text(name.get("family") or name.get("literal") or name.get("given"))
    return _text(name)


def _year(item: dict[str, Any]) -> str | None:
    issued = item.get("issued")
    if isinstance(issued, dict):
        parts = issued.get("date-parts")
        if isinstance(parts, list) and parts and isinstance(parts[0], list) and parts[0]:
            found = _YEAR.search(str(parts[0][0]))
            if found:
                return found.group(1)
        for key in ("raw", "literal"):
            found = _YEAR.search(str(issued.get(key) or ""))
            if found:
                return found.group(1)
    elif issued is not None:  # CSL-YAML allows "issued: 2017-05-01"
        found = _YEAR.search(str(issued))
        if found:
            return found.group(1)
    return None


def _csl_date(item: dict[str, Any]) -> None:
    """Dates written as strings (CSL-YAML, ``issued: 2017``) into ``date-parts``."""
    for key in ("issued", "accessed"):
        value = item.get(key)
        if value is not None and not isinstance(value, dict):
            parts = [int(p) for p in re.findall(r"\d+", str(value))[:3]]
            item[key] = {"date-parts": [parts]} if parts else {"literal": str(value)}


def entry_from_csl(item: Any, source: str, fallback_key: str | None = None) -> Entry:
    """A CSL item as an Entry; ValueError when it is not an item (no id, no title)."""
    if not isinstance(item, dict):
        raise ValueError(f"an item must be an object, not {type(item).__name__}")
    key = item.get("citation-key") or item.get("id") or fallback_key
    if key is None or str(key).strip() == "":
        raise ValueError("an item without an id")
    key = str(key).strip()
    title = decode_latex(_text(item.get("title")))
    if not title:
        raise ValueError(f"item {key!r} has no title")
    csl = {k: v for k, v in item.items() if k != "citation-key"}
    csl["id"] = key
    csl.setdefault("type", "article")
    _csl_date(csl)
    authors = item.get("author") or item.get("editor") or []
    surnames = (
        [s for s in (_surname(a) for a in authors if a) if s] if isinstance(authors, list) else []
    )
    return Entry(
        key=key,
        title=title,
        author=surnames[0] if surnames else None,
        authors=surnames,
        year=_year(item),
        doi=clean_doi(_text(item.get("DOI") or item.get("doi")) or None),
        url=_text(item.get("URL") or item.get("url")) or None,
        csl=csl,
        source=source,
    )


def _entries(items: list[Any], source: str) -> tuple[list[Entry], list[Problem]]:
    entries, problems = [], []
    for index, item in enumerate(items):
        try:
            entries.append(entry_from_csl(item, source))
        except ValueError as err:
            problems.append(Problem(source, f"item {index + 1} skipped: {err}"))
    return entries, problems


def parse_csl_json(text: str, source: str) -> tuple[list[Entry], list[Problem]]:
    """A CSL-JSON text: a list of items (or one item, or ``{"items": [...]}``)."""
    try:
        data = json.loads(text)
    except ValueError as err:
        return [], [Problem(source, f"not valid JSON ({err}): CSL-JSON is a list of items")]
    if isinstance(data, dict):
        data = data.get("items", data.get("references", [data]))
    if not isinstance(data, list):
        return [], [Problem(source, "CSL-JSON must be a list of items")]
    return _entries(data, source)


def parse_csl_yaml(text: str, source: str) -> tuple[list[Entry], list[Problem]]:
    """A CSL-YAML text: a list of items or Pandoc's ``references:`` mapping."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        return [], [Problem(source, f"not valid YAML: {getattr(err, 'problem', err)}", line)]
    if isinstance(data, dict):
        data = data.get("references", [])
    if data is None:
        return [], [Problem(source, "the file holds no references")]
    if not isinstance(data, list):
        return [], [Problem(source, "CSL-YAML must be a list of items or `references:`")]
    return _entries(data, source)


def _looks_like_item(value: Any) -> bool:
    return isinstance(value, dict) and ("title" in value or "type" in value)


def parse_notebook_items(metadata: Any, source: str) -> tuple[list[Entry], list[Problem]]:
    """The CSL items of jupyterlab-citation-manager in a notebook's metadata."""
    if not isinstance(metadata, dict):
        return [], []
    manager = metadata.get("citation-manager")
    if not isinstance(manager, dict) or not isinstance(manager.get("items"), dict):
        return [], []
    where = f"{source} (citation-manager metadata)"
    entries, problems = [], []
    for name, value in manager["items"].items():
        records = {name: value} if _looks_like_item(value) else value
        if not isinstance(records, dict):
            problems.append(Problem(where, f"items[{name!r}] is not a mapping of items"))
            continue
        for item_id, item in records.items():
            try:
                entries.append(entry_from_csl(item, where, fallback_key=str(item_id)))
            except ValueError as err:
                problems.append(Problem(where, f"item {item_id!r} skipped: {err}"))
    return entries, problems
