"""Result parsers of the prompt library: a raw continuation (special tokens kept) into a dict
with at least ``text``. Each takes the raw text already cut at the template's stops."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .escape import unescape
from .request import END_REF, START_REF

_REFERENCE = re.compile(re.escape(START_REF) + r"(.*?)" + re.escape(END_REF), re.DOTALL)
_LABEL = re.compile(r"^(?:A|Answer|Ans)\s*:\s*")


def document(raw: str) -> dict[str, Any]:
    """Generated prose, with the references it cites (``[START_REF] ... [END_REF]``)."""
    text = unescape(raw).strip()
    references = [" ".join(r.split()) for r in _REFERENCE.findall(text)]
    return {"text": text, "references": [r for r in references if r]}


def answer(raw: str) -> dict[str, Any]:
    return {"text": unescape(raw).strip()}


def listing(raw: str) -> dict[str, Any]:
    """A comma-separated list (``A: LaTeX equations, MATH, ...``; protein keywords)."""
    text = _LABEL.sub("", unescape(raw).strip())
    items = [item.strip().rstrip(".") for item in text.replace("\n", ",").split(",")]
    return {"text": text, "items": [item for item in items if item]}


def iupac_name(raw: str) -> dict[str, Any]:
    """The name after "The following are chemical properties for" (up to the line's end)."""
    name = unescape(raw).strip().split("\n", 1)[0].strip()
    name = name[:-1] if name.endswith(".") else name
    return {"text": name, "name": name or None}


_ROW = re.compile(r"^\|\s*([^|]+?)\s*\|\s*([^|]*?)\s*\|?\s*$")


def properties(raw: str) -> dict[str, Any]:
    """The name and the ``| Property Name | Property Value`` table of a PubChem-style page."""
    text = unescape(raw).strip()
    name = iupac_name(text)["name"]
    table: dict[str, str] = {}
    for line in text.splitlines():
        row = _ROW.match(line.strip())
        if not row:
            continue
        key, value = row.group(1), row.group(2)
        if key == "Property Name" or set(key) <= {"-", " "} or not value:
            continue
        table.setdefault(key, value)
    return {"text": text, "name": name, "properties": table}


def molecule(raw: str) -> dict[str, Any]:
    """A generated SMILES, checked with RDKit when it is installed
    (:func:`galactica_ext.prompts.chem.check_smiles`)."""
    from .chem import check_smiles

    smiles = "".join(unescape(raw).split())
    return {"text": smiles, "smiles": smiles, "check": check_smiles(smiles)}


def sequence(raw: str) -> dict[str, Any]:
    """A generated DNA or protein sequence (whitespace dropped)."""
    seq = "".join(unescape(raw).split())
    return {"text": seq, "sequence": seq}


_DISPLAY = re.compile(r"\\\[(.*?)(?:\\\]|$)|\$\$(.*?)(?:\$\$|$)", re.DOTALL)


def reaction(raw: str) -> dict[str, Any]:
    """A reaction as GALACTICA writes it: a display equation (``\\[ \\ce{...} \\]``)."""
    text = unescape(raw).strip()
    found = _DISPLAY.search(text)
    latex = (
        (found.group(1) if found.group(1) is not None else found.group(2)).strip() if found else ""
    )
    return {"text": text, "latex": latex or None}


PARSERS: dict[str, Callable[[str], dict[str, Any]]] = {
    "document": document,
    "answer": answer,
    "list": listing,
    "iupac_name": iupac_name,
    "properties": properties,
    "molecule": molecule,
    "sequence": sequence,
    "reaction": reaction,
}
