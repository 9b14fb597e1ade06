"""Shared fixtures: the real GALACTICA tokenizer and a random-weight GALACTICA-shaped model.

Nothing here is mocked. The tokenizer comes from ``$GALACTICA_TOKENIZER_DIR`` (default
``../shared/fixtures/galactica-tokenizer``); the model is an OPT checkpoint of the ``tiny``
shape (hidden 64, 2 layers, vocabulary 50,000) with random weights, built once per session.
Its output is meaningless, so tests that need particular tokens force them
(``SamplingParams.logit_bias``, ``prefix_allowed_tokens_fn``) instead of hoping for them.

Torch is imported inside the fixtures, so test modules that don't use them stay torch-free.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from galactica_ext.engine import GalacticaModel

#: one agent (and one vLLM server) per session, shared by every module that asks for it
pytest_plugins = ["agent_fixtures"]


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    """The directory of the real GALACTICA tokenizer files (and its config.json)."""
    from galactica_ext.checkpoints import tokenizer_dir as find

    return find()


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir: Path) -> Any:
    """The real GALACTICA tokenizer with the engine's fixes (special ids, left padding)."""
    from galactica_ext.engine import load_tokenizer

    return load_tokenizer(str(tokenizer_dir))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local directory holding a random-weight ``tiny`` GALACTICA checkpoint and the real
    tokenizer files: what ``GalacticaModel.load(str(path))`` or an agent takes as a local model."""
    from galactica_ext.checkpoints import build_random_checkpoint

    return build_random_checkpoint(tmp_path_factory.mktemp("galactica-tiny"), "tiny")


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint: Path) -> Iterator[GalacticaModel]:
    """The tiny checkpoint loaded once on the CPU in float32, with its engine running.

    Shared by the whole session: tests must not close it, and must not assume its prefix
    cache or step counter start from zero (compare before and after instead).
    """
    from galactica_ext.engine import GalacticaModel

    model = GalacticaModel.load(str(tiny_checkpoint), dtype="float32", device="cpu")
    yield model
    model.close()


@pytest.fixture(scope="session", autouse=True)
def _stop_agents_started_by_connect() -> Iterator[None]:
    """Agents that ``client.connect()`` starts for kernels outlive them by design (they are
    shared through the runtime file); at the end of the test session, stop any still running."""
    yield
    import subprocess

    from galactica_ext import client

    for proc in client.started_agents:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
