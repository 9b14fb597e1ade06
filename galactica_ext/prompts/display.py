"""Prompt-library results as notebook displays (``%%galactica --task NAME``): markdown for
text, lists and tables, LaTeX for equations, and a molecule's 2D structure (SVG, with RDKit)
beside its SMILES, or a clear line saying why there is none. Every display ends with the
note that GALACTICA can make things up."""

from __future__ import annotations

import html
from typing import Any

from ..notices import MAKES_THINGS_UP
from . import chem
from .library import get


class TemplateResult:
    """A prompt-library result that shows itself: ``plain`` is the text a terminal shows."""

    def __init__(self, name: str, result: dict[str, Any]) -> None:
        self.template = get(name)
        self.result = result

    @property
    def plain(self) -> str:
        result = self.result
        kind = self.template.result
        if kind == "list" and result.get("items"):
            return "\n".join(f"- {item}" for item in result["items"])
        if kind == "table" and result.get("properties"):
            rows = [f"{k}: {v}" for k, v in result["properties"].items()]
            return "\n".join([f"name: {result.get('name') or '?'}", *rows])
        if kind == "equation" and result.get("latex"):
            return result["latex"]
        if kind == "molecule":
            return "\n".join([result.get("smiles") or "(no SMILES)", self._molecule_line()])
        return result.get("text") or "(nothing generated)"

    def _molecule_line(self) -> str:
        check = self.result.get("check") or {}
        if check.get("valid"):
            return f"parses with RDKit: {check['formula']}, canonical {check['canonical']}"
        return check.get("error") or chem.NO_RDKIT

    def __repr__(self) -> str:
        return self.plain

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.plain)

    def _repr_markdown_(self) -> str | None:
        if self.template.result == "molecule":
            return None  # HTML: the drawing and the SMILES
        kind, result = self.template.result, self.result
        if kind == "table" and result.get("properties"):
            rows = [f"| {k} | {v} |" for k, v in result["properties"].items()]
            body = "\n".join(
                [f"**{result.get('name') or ''}**", "", "| Property | Value |", "|---|---|", *rows]
            )
        elif kind == "equation" and result.get("latex"):
            body = f"$$\n{result['latex']}\n$$"
        else:
            body = self.plain
        return f"{body}\n\n*{self.template.title}: {MAKES_THINGS_UP}*"

    def _repr_html_(self) -> str | None:
        if self.template.result != "molecule":
            return None
        smiles = self.result.get("smiles") or ""
        try:
            drawing = chem.smiles_svg(smiles)
        except ValueError as err:
            drawing = f"<p><b>No structure:</b> {html.escape(str(err))}</p>"
        return (
            f"<div class='galactica-molecule'>{drawing}"
            f"<pre>{html.escape(smiles or '(no SMILES)')}</pre>"
            f"<p>{html.escape(self._molecule_line())}</p>"
            f"<p><i>{html.escape(MAKES_THINGS_UP)}</i></p></div>"
        )
