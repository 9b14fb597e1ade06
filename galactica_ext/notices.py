"""What users must be told wherever they meet GALACTICA: its licence and that it makes
things up. One place, so the CLI, the magics, the widget and the server say the same."""

from __future__ import annotations

MODEL_CARD = "https://huggingface.co/facebook/galactica-125m"
MODEL_LICENCE = (
    "GALACTICA's weights are licensed CC BY-NC 4.0: non-commercial use only "
    f"(this extension's code is BSD-3-Clause). Model card: {MODEL_CARD}"
)
MAKES_THINGS_UP = (
    "GALACTICA can make things up (citations, numbers, molecules): check what it writes."
)
