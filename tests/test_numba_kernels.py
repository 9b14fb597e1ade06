"""The engine's numba kernels (engine/numba_kernels.py): each one's switch in the environment,
and the fallback where a kernel cannot be built."""

from __future__ import annotations

import logging

import pytest

from galactica_ext.engine import bf16_attention, few_rows, numba_kernels

KERNELS = [(bf16_attention, "ATTENTION_ENV"), (few_rows, "PRODUCT_ENV")]


@pytest.mark.parametrize(("module", "env_name"), KERNELS)
def test_each_kernel_is_switched_by_its_environment_variable(
    module, env_name, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = getattr(module, env_name)
    try:
        monkeypatch.setenv(env, "torch")
        module.kernel.cache_clear()
        assert module.kernel() is None
        monkeypatch.setenv(env, "fastest")
        module.kernel.cache_clear()
        with pytest.raises(ValueError, match=rf"\${env}='fastest': expected one of auto, torch"):
            module.kernel()
    finally:
        monkeypatch.delenv(env)
        module.kernel.cache_clear()
    assert module.kernel() is not None


def test_a_kernel_that_cannot_be_built_falls_back_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def build():
        raise ImportError("no numba here")

    with caplog.at_level(logging.INFO, logger=numba_kernels.__name__):
        kernel = numba_kernels.load("GALACTICA_NO_SUCH_SWITCH", "a test kernel", "torch", build)
    assert kernel is None
    assert "a test kernel: torch (the numba kernel cannot run here: no numba here)" in caplog.text
