"""Model specs (sizes, hub ids, local directories) and the package's light imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from galactica_ext import specs
from galactica_ext.specs import (
    CONTEXT_LENGTH,
    DEFAULT_MODEL,
    MODEL_ENV,
    is_local,
    resolve_model_spec,
    valid_names,
)

SIZE_ALIASES = {
    "mini": "facebook/galactica-125m",
    "base": "facebook/galactica-1.3b",
    "standard": "facebook/galactica-6.7b",
    "large": "facebook/galactica-30b",
    "huge": "facebook/galactica-120b",
    "125m": "facebook/galactica-125m",
    "1.3b": "facebook/galactica-1.3b",
    "6.7b": "facebook/galactica-6.7b",
    "30b": "facebook/galactica-30b",
    "120b": "facebook/galactica-120b",
}


@pytest.mark.parametrize(("alias", "hub_id"), SIZE_ALIASES.items())
def test_size_aliases_map_to_hub_ids(alias: str, hub_id: str) -> None:
    assert resolve_model_spec(alias) == hub_id
    assert resolve_model_spec(f"  {alias.upper()} ") == hub_id  # typed by a person


def test_every_alias_is_listed_as_valid() -> None:
    assert set(valid_names()) == set(SIZE_ALIASES)


def test_default_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODEL_ENV, raising=False)
    assert DEFAULT_MODEL == "facebook/galactica-125m"
    assert resolve_model_spec() == DEFAULT_MODEL
    assert resolve_model_spec("") == DEFAULT_MODEL
    monkeypatch.setenv(MODEL_ENV, "large")
    assert resolve_model_spec(None) == "facebook/galactica-30b"
    assert resolve_model_spec("base") == "facebook/galactica-1.3b"  # the API wins


def test_hub_ids_pass_through() -> None:
    assert resolve_model_spec("facebook/galactica-6.7b") == "facebook/galactica-6.7b"
    assert resolve_model_spec("someone/galactica-finetune") == "someone/galactica-finetune"
    assert not is_local("facebook/galactica-125m")


@pytest.mark.parametrize("spec", ["galactica-2b", "7b", "gpt2", "a/b/c", "org/"])
def test_unknown_alias_lists_the_valid_ones(spec: str) -> None:
    with pytest.raises(ValueError) as err:
        resolve_model_spec(spec)
    message = str(err.value)
    assert repr(spec) in message
    for name in valid_names():
        assert name in message


def test_local_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "my-galactica"
    model.mkdir()
    resolved = resolve_model_spec(str(model))
    assert resolved == str(model.resolve())
    assert is_local(resolved)
    monkeypatch.chdir(tmp_path)
    assert resolve_model_spec("./my-galactica") == str(model.resolve())
    assert resolve_model_spec("my-galactica") == str(model.resolve())  # exists: a path


@pytest.mark.parametrize("name", ["missing-model", "~/surely/not/here/galactica"])
def test_missing_local_path_names_the_path(tmp_path: Path, name: str) -> None:
    path = str(tmp_path / name) if not name.startswith("~") else name
    with pytest.raises(FileNotFoundError) as err:
        resolve_model_spec(path)
    assert str(Path(path).expanduser()) in str(err.value)


def test_a_file_is_not_a_model_directory(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors"):
        resolve_model_spec(str(weights))


def test_context_length() -> None:
    assert CONTEXT_LENGTH == 2048


def test_light_modules_do_not_import_torch() -> None:
    """The Jupyter server and kernels import these: torch must stay out (seconds, 100s of MB)."""
    code = (
        "import json, sys\n"
        "import galactica_ext, galactica_ext.tasks, galactica_ext.specs\n"
        "heavy = [m for m in ('torch', 'transformers', 'accelerate') if m in sys.modules]\n"
        "print(json.dumps(heavy))\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    assert specs.__name__ == "galactica_ext.specs"
