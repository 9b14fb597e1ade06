"""Molecules GALACTICA writes, checked with RDKit when it is installed (the ``chem`` extra:
``pip install "galactica_ext[chem]"``): does the SMILES parse, its canonical form, formula,
and a 2D drawing as SVG. Without RDKit every answer says so instead of guessing."""

from __future__ import annotations

from typing import Any

NO_RDKIT = (
    'RDKit is not installed, so the SMILES was not checked: pip install "galactica_ext[chem]"'
)


def rdkit_available() -> bool:
    try:
        import rdkit  # noqa: F401
    except ImportError:
        return False
    return True


def _parse(smiles: str) -> tuple[Any, str | None]:
    """RDKit's molecule for ``smiles`` and None, or None and why it does not parse."""
    from rdkit import Chem, rdBase

    if not smiles:
        return None, "the SMILES is empty"
    with rdBase.BlockLogs():  # RDKit prints parse errors to stderr; we report them instead
        mol = Chem.MolFromSmiles(smiles, sanitize=False)
        if mol is None:
            return None, f"{smiles!r} is not valid SMILES syntax"
        try:
            Chem.SanitizeMol(mol)
        except Exception as err:  # RDKit raises its own (Boost) exception types
            return None, f"{smiles!r} is not a valid molecule: {err}"
    return mol, None


def check_smiles(smiles: str) -> dict[str, Any]:
    """``{"valid": True, "canonical", "formula"}``, ``{"valid": False, "error"}``, or, without
    RDKit, ``{"valid": None, "error": NO_RDKIT}``."""
    if not rdkit_available():
        return {"valid": None, "error": NO_RDKIT}
    from rdkit import Chem
    from rdkit.Chem.rdMolDescriptors import CalcMolFormula

    mol, error = _parse(smiles)
    if mol is None:
        return {"valid": False, "error": f"GALACTICA's SMILES does not parse: {error}"}
    return {
        "valid": True,
        "canonical": Chem.MolToSmiles(mol),
        "formula": CalcMolFormula(mol),
        "error": None,
    }


def smiles_svg(smiles: str, size: tuple[int, int] = (300, 220)) -> str:
    """A 2D drawing of ``smiles`` as SVG; ValueError when it does not parse or RDKit is
    missing (the message says which)."""
    if not rdkit_available():
        raise ValueError(NO_RDKIT)
    from rdkit.Chem.Draw import rdMolDraw2D

    mol, error = _parse(smiles)
    if mol is None:
        raise ValueError(f"no drawing: {error}")
    drawer = rdMolDraw2D.MolDraw2DSVG(*size)
    rdMolDraw2D.PrepareAndDrawMolecule(drawer, mol)
    drawer.FinishDrawing()
    return drawer.GetDrawingText()
