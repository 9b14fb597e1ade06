"""bfloat16 products by the blocked AVX-512 BF16 kernel (engine/blocked.py): float32 sums rounded
once, within a bfloat16 step of oneDNN's; used instead of oneDNN's packed copy where it runs;
oneDNN where it cannot (no compiler, another CPU, AMX, the switch)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from galactica_ext.engine import blocked
from galactica_ext.engine.cpu import PackedLinear, can_pack, pack_linears

RUNS = blocked.kernel() is not None
needs_kernel = pytest.mark.skipif(
    not RUNS, reason="the blocked kernel does not run here (no AVX-512 BF16, AMX, or no compiler)"
)


@pytest.fixture
def fresh_kernel():
    """``blocked.kernel()`` looked up again in the test (its environment), and again after."""
    blocked.kernel.cache_clear()
    yield
    blocked.kernel.cache_clear()


def _bf16_step(values: torch.Tensor) -> torch.Tensor:
    """The spacing of bfloat16 values at ``values``' magnitudes (one rounding step)."""
    exponent = torch.floor(torch.log2(values.abs().clamp_min(2**-60)))
    return torch.pow(2.0, exponent - 7)


def test_the_kernel_runs_where_the_cpu_and_a_compiler_allow() -> None:
    """Where the CPU has AVX-512 BF16 without AMX and there is a C compiler, the suite must
    exercise the kernel, not its fallback."""
    flags = blocked.cpu_flags()
    usable = all(f in flags for f in blocked.NEEDED) and not any(f.startswith("amx") for f in flags)
    compiler = os.environ.get("CC") or any(
        os.access(os.path.join(d, c), os.X_OK)
        for d in os.environ.get("PATH", "").split(os.pathsep)
        for c in ("cc", "gcc")
    )
    if usable and compiler and os.environ.get(blocked.PRODUCT_ENV, "auto") == "auto":
        assert RUNS


@needs_kernel
@pytest.mark.parametrize("rows", [1, 2, 3, 5, 6, 7, 13, 64, 300])
@pytest.mark.parametrize(("bias", "gelu"), [(False, False), (True, False), (True, True)])
def test_products_are_float32_sums_rounded_once(rows: int, bias: bool, gelu: bool) -> None:
    seeded = torch.Generator().manual_seed(rows)
    features = 192 + 37  # a last block of 37 outputs (a vocabulary of 50,000 ends in 16)
    weight = torch.randn(features, 160, generator=seeded).to(torch.bfloat16)
    b = torch.randn(features, generator=seeded).to(torch.bfloat16) if bias else None
    x = torch.randn(rows, 160, generator=seeded).to(torch.bfloat16)
    got = blocked.BlockedWeight(weight, b)(x, "gelu" if gelu else "none")
    assert got.dtype == torch.bfloat16 and got.shape == (rows, features)
    exact = x.double() @ weight.double().T + (b.double() if bias else 0)
    if gelu:
        exact = nn.functional.gelu(exact)
    # float32 sums in another order, then one rounding: within a step (and a float32 error)
    error = (got.double() - exact).abs()
    assert (error <= _bf16_step(exact) + 1e-4 * exact.abs().max()).all()


@needs_kernel
@pytest.mark.skipif(
    not can_pack(torch.bfloat16, torch.device("cpu")), reason="no oneDNN bfloat16 here"
)
@pytest.mark.parametrize("rows", [1, 4, 256])
def test_products_agree_with_onednns_packed_ones(rows: int) -> None:
    """What it replaces: oneDNN's packed product with its GELU post-op, within a bfloat16 step."""
    seeded = torch.Generator().manual_seed(0)
    weight = (torch.randn(256, 128, generator=seeded) * 0.1).to(torch.bfloat16)
    bias = torch.randn(256, generator=seeded).to(torch.bfloat16)
    x = torch.randn(rows, 128, generator=seeded).to(torch.bfloat16)
    packed = torch.ops.mkldnn._reorder_linear_weight(weight, 1)
    for activation in ("none", "gelu"):
        want = torch.ops.mkldnn._linear_pointwise(x, packed, bias, activation, [], "none")
        got = blocked.BlockedWeight(weight, bias)(x, activation)
        step = _bf16_step(torch.maximum(want.float().abs(), got.float().abs()))
        assert ((got.float() - want.float()).abs() <= step + 1e-3).all(), activation


@needs_kernel
def test_leading_dimensions_are_kept_and_nan_reaches_the_output() -> None:
    weight = torch.randn(64, 32).to(torch.bfloat16)
    product = blocked.BlockedWeight(weight, None)
    x = torch.randn(2, 3, 32).to(torch.bfloat16)
    out = product(x)
    assert out.shape == (2, 3, 64)
    assert torch.equal(out[1, 2], product(x[1, 2:3])[0])
    assert product(torch.empty(0, 32, dtype=torch.bfloat16)).shape == (0, 64)
    x[0, 0, 5] = float("nan")
    out = product(x)
    assert out[0, 0].isnan().all() and not out[0, 1].isnan().any()


@needs_kernel
def test_other_dtypes_and_shapes_are_refused_clearly() -> None:
    product = blocked.BlockedWeight(torch.randn(64, 32).to(torch.bfloat16), None)
    with pytest.raises(TypeError, match=r"bfloat16 rows, not torch\.float32"):
        product(torch.randn(1, 32))
    assert not blocked.fits(torch.randn(64, 31).to(torch.bfloat16))  # not pairs
    assert not blocked.fits(torch.randn(64, 32))  # float32
    with pytest.raises(ValueError, match="does not take this weight"):
        blocked.BlockedWeight(torch.randn(64, 31).to(torch.bfloat16), None)


@needs_kernel
def test_a_bfloat16_model_is_blocked_instead_of_packed(monkeypatch, fresh_kernel) -> None:
    """Layers get one blocked copy and no oneDNN copy (a last block not whole too: 100 outputs);
    with the switch at "torch", oneDNN as before."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 100)).to(torch.bfloat16)
    model.requires_grad_(False)
    x = torch.randn(5, 64).to(torch.bfloat16)
    want = model(x).float()
    assert pack_linears(model) == 2
    first, last = model[0], model[2]
    assert isinstance(first, PackedLinear) and first.blocked is not None and first.packed is None
    assert "blocked" in repr(first)
    assert last.blocked is not None and last.packed is None
    assert torch.allclose(model(x).float(), want, atol=5e-2, rtol=5e-2)

    monkeypatch.setenv(blocked.PRODUCT_ENV, "torch")
    blocked.kernel.cache_clear()
    again = nn.Sequential(nn.Linear(64, 128)).to(torch.bfloat16).requires_grad_(False)
    pack_linears(again)
    assert again[0].blocked is None and again[0].packed is not None


def test_a_bad_switch_names_what_it_takes(monkeypatch, fresh_kernel) -> None:
    monkeypatch.setenv(blocked.PRODUCT_ENV, "fast")
    with pytest.raises(ValueError, match="auto, always, torch"):
        blocked.kernel()


def test_amx_cpus_keep_onednn_unless_asked(monkeypatch, fresh_kernel, caplog) -> None:
    """oneDNN's AMX code computes prompts far faster than this kernel: "auto" leaves AMX CPUs to
    it (the log says so), "always" takes the kernel anyway where the CPU runs it."""
    flags = blocked.cpu_flags() | {"amx_tile", "amx_bf16"}
    monkeypatch.setattr(blocked, "cpu_flags", lambda: flags)
    with caplog.at_level(logging.INFO, logger=blocked.__name__):
        assert blocked.kernel() is None
    assert "AMX" in caplog.text
    monkeypatch.setenv(blocked.PRODUCT_ENV, "always")
    blocked.kernel.cache_clear()
    assert (blocked.kernel() is not None) == RUNS


def test_without_a_compiler_onednn_runs_and_the_log_says_why(
    monkeypatch, fresh_kernel, caplog, tmp_path: Path
) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv(blocked.CACHE_ENV, str(tmp_path / "kernels"))
    monkeypatch.setenv(blocked.PRODUCT_ENV, "always")
    with caplog.at_level(logging.INFO, logger=blocked.__name__):
        assert blocked.kernel() is None
    assert "cannot run here" in caplog.text


@needs_kernel
def test_the_compiled_kernel_is_cached_for_the_user_alone(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(blocked.CACHE_ENV, str(tmp_path / "kernels"))
    library = blocked.compiled_library()
    assert library.parent == tmp_path / "kernels"
    assert library.stat().st_mode & 0o077 == 0 and library.parent.stat().st_mode & 0o077 == 0
    modified = library.stat().st_mtime_ns
    assert blocked.compiled_library() == library  # found, not compiled again
    assert library.stat().st_mtime_ns == modified
    assert [p.name for p in library.parent.iterdir()] == [library.name]  # no partial files


@needs_kernel
def test_a_last_block_not_whole_writes_only_its_outputs() -> None:
    """The padding's outputs are not written: the memory after each row's last output (here the
    next row's, then a guard) keeps what it held."""
    weight = torch.randn(37, 32).to(torch.bfloat16)
    product = blocked.BlockedWeight(weight, None)
    x = torch.randn(3, 32).to(torch.bfloat16)
    memory = torch.full((3 * 37 + 64,), 7.0, dtype=torch.bfloat16)
    product.run(x.data_ptr(), 3, 32, product.blocked.data_ptr(), 0, False, memory.data_ptr(), 37)
    assert torch.equal(memory[3 * 37 :], torch.full((64,), 7.0, dtype=torch.bfloat16))
    assert torch.equal(memory[: 3 * 37].view(3, 37), product(x))


def test_a_kernel_cache_others_can_write_to_is_refused(monkeypatch, tmp_path: Path) -> None:
    """Loading code from a directory others can write to would run theirs."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv(blocked.CACHE_ENV, str(shared))
    with pytest.raises(RuntimeError, match="not the user's own"):
        blocked.compiled_library()
