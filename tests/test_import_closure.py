"""Torch stays below the agent: nothing that runs in the Jupyter server or a kernel imports it.

Importing torch costs seconds and hundreds of MB; the server extension, the client, the magics,
the widget, the tasks, the prompt library, the protocol and the bibliography library must not
pull it in, directly or through anything they import. Each module is imported in a fresh
interpreter that checks after each import, so the first module to pull torch in is named.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "galactica_ext"
#: the only places torch belongs
TORCH_PACKAGES = ("engine", "agent")
#: heavy libraries that must stay out for the same reason
HEAVY = ("torch", "transformers", "accelerate")


def torch_free_modules() -> list[str]:
    """Every module of the package outside ``engine/`` and ``agent/``."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[0] in (*TORCH_PACKAGES, "labextension"):
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(("galactica_ext", *parts)))
    return names


def test_the_list_covers_the_front_ends() -> None:
    names = torch_free_modules()
    for expected in ("galactica_ext.client", "galactica_ext.magics", "galactica_ext.tasks"):
        assert expected in names
    assert not any(name.startswith("galactica_ext.engine") for name in names)


def test_no_torch_free_module_imports_torch() -> None:
    """One fresh interpreter imports the modules one by one and names the first that pulls in
    a heavy library (whatever imports it first is the culprit)."""
    code = (
        "import importlib, sys\n"
        f"for name in {torch_free_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        f"    heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "    if heavy:\n"
        "        print(name, 'imports', ', '.join(heavy))\n"
        "        break\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == ""
