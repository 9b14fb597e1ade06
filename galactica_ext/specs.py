"""Model specs: size aliases, hub ids and local directories, resolved without importing torch."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "facebook/galactica-125m"
MODEL_ENV = "GALACTICA_MODEL"

#: GALACTICA sizes by the paper's parameter counts and galai's names.
SIZES: dict[str, str] = {
    "125m": "facebook/galactica-125m",
    "1.3b": "facebook/galactica-1.3b",
    "6.7b": "facebook/galactica-6.7b",
    "30b": "facebook/galactica-30b",
    "120b": "facebook/galactica-120b",
}
ALIASES: dict[str, str] = {
    "mini": "125m",
    "base": "1.3b",
    "standard": "6.7b",
    "large": "30b",
    "huge": "120b",
}
#: Context length of every GALACTICA model (tokens).
CONTEXT_LENGTH = 2048


def valid_names() -> list[str]:
    """Every alias a user may type, for error messages and pickers."""
    return [*ALIASES, *SIZES]


def resolve_model_spec(spec: str | None = None) -> str:
    """Turn a user's model spec into a hub id or an absolute local directory.

    ``None`` or ``""`` take ``$GALACTICA_MODEL``, then the default (galactica-125m). A size
    alias maps to its ``facebook/galactica-*`` id; an ``org/name`` is a hub id; anything that
    looks like a path must be an existing directory.
    """
    spec = (spec or os.environ.get(MODEL_ENV) or DEFAULT_MODEL).strip()
    key = spec.lower()
    if key in ALIASES:
        return SIZES[ALIASES[key]]
    if key in SIZES:
        return SIZES[key]
    path = Path(spec).expanduser()
    if spec.startswith(("/", ".", "~")) or path.exists():
        if not path.is_dir():
            raise FileNotFoundError(
                f"model directory {str(path)!r} does not exist (a local model is a directory "
                "holding config.json, the weights and the tokenizer files)"
            )
        return str(path.resolve())
    parts = spec.split("/")
    if len(parts) == 2 and all(parts):
        return spec
    raise ValueError(
        f"unknown model {spec!r}: use a size ({', '.join(valid_names())}), "
        "a Hugging Face hub id such as facebook/galactica-1.3b, or a local directory"
    )


def is_local(resolved: str) -> bool:
    """Whether a resolved spec is a local directory rather than a hub id."""
    return Path(resolved).is_absolute()
