"""bfloat16 weights on CPUs without bfloat16 arithmetic: stored in bfloat16, multiplied in float32.

Most laptops, and older servers, have AVX2 but neither AVX-512 BF16 nor AMX. There oneDNN has
no bfloat16 kernels (:func:`.cpu.can_pack` is False) and torch's own bfloat16 product is slow:
on a 2-core AMD EPYC (Zen 1, AVX2 only), galactica-125m's layer matrices took longer in bfloat16
than in float32 (one row 1.2-1.7x, a 256-row prompt chunk 5.6-6.6x). A scientist who picks
bfloat16 there still wants what it promises (half float32's memory, half the bytes per decoding
step), so :class:`WidenedLinear` keeps the bfloat16 weight and computes in float32:

- **decoding steps** (up to :data:`.few_rows.WIDENED_MAX_ROWS` sequences): a numba kernel reads
  each bfloat16 weight once, widens it in registers, sums in float32 and rounds once, as
  oneDNN's bfloat16 product does where it exists;
- **prompts** (more rows): a float32 copy of the weight, made for the call, and oneDNN's float32
  product over it with fc1's GELU inside (:func:`onednn_float32`; torch's product and GELU where
  oneDNN is missing), rounded once. On the Zen 1 EPYC, galactica-125m's four layer products with
  two threads: 63.4 instead of 75.1 ms for a 256-token chunk, 224 instead of 238 ms for 1,000
  tokens (``benchmarks/products.py --widened``).

Both are float32 sums of the same bfloat16 values, so their results are within one bfloat16
step of torch's bfloat16 product (tested). Where numba is missing, nothing changes.
The prompt attention of such a model computes in float32 as well (:func:`.cpu.prompt_attention`).
Measured: ``benchmarks/products.py --widened``.

``$GALACTICA_BF16_PRODUCTS``: ``auto`` (widened where the CPU has no bfloat16 arithmetic),
``always`` (on any CPU: to compare, and to test this path everywhere), ``never``.
"""

from __future__ import annotations

import functools
import logging

import torch
from torch import nn

from . import few_rows, numba_kernels

log = logging.getLogger(__name__)

#: the environment switch (module docstring) and its accepted values
ENV = "GALACTICA_BF16_PRODUCTS"
CHOICES = ("auto", "always", "never")


class WidenedLinear(nn.Module):
    """An ``nn.Linear`` with a bfloat16 weight, multiplied in float32 (module docstring)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        #: "none" or "gelu": the exact GELU in float32 before rounding (:func:`.cpu.fuse_gelu`)
        self.activation = "none"
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight  # the same parameter: a tied weight stays shared
        self.bias = linear.bias
        self.few_rows = few_rows.FewRows(self.weight, self.bias, widened=True)
        #: prompts through oneDNN's float32 product (:func:`onednn_float32`), else torch's
        self.onednn = onednn_float32()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.few_rows(x, self.activation)
        if out is not None:
            return out
        wide, weight = x.float(), self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        if self.onednn:
            out = torch.ops.mkldnn._linear_pointwise(
                wide, weight, bias, self.activation, [], "none"
            )
        else:
            out = nn.functional.linear(wide, weight, bias)
            if self.activation == "gelu":
                out = nn.functional.gelu(out)
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        post = "" if self.activation == "none" else f", post-op={self.activation}"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bfloat16 "
            f"weight, float32 products (up to {self.few_rows.max_rows} rows: numba){post}"
        )


@functools.cache
def onednn_float32() -> bool:
    """Whether oneDNN multiplies an unpacked float32 weight here, with the exact GELU inside,
    as torch's product and GELU do (checked once on a small product)."""
    if not torch.backends.mkldnn.is_available():
        return False
    seeded = torch.Generator().manual_seed(0)  # leave the global random state alone
    x, weight = torch.randn(40, 24, generator=seeded), torch.randn(16, 24, generator=seeded)
    bias = torch.randn(16, generator=seeded)
    try:
        with torch.inference_mode():
            got = torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "none")
    except (AttributeError, RuntimeError) as err:
        log.info("oneDNN's float32 product unavailable (%s): torch's for prompts", err)
        return False
    want = nn.functional.gelu(nn.functional.linear(x, weight, bias))
    return bool(torch.allclose(got, want, rtol=1e-4, atol=1e-5))


def wanted() -> bool:
    """Whether bfloat16 models compute in float32 here (``$GALACTICA_BF16_PRODUCTS``; ``auto``:
    where oneDNN has no bfloat16 kernels)."""
    from .cpu import native_bf16

    choice = numba_kernels.wanted(ENV, CHOICES)
    return choice == "always" or (choice == "auto" and not native_bf16())


def can_widen(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether :func:`widen_linears` applies: a bfloat16 model on the CPU, :func:`wanted`, and
    numba's kernels work."""
    if device.type != "cpu" or dtype != torch.bfloat16 or not wanted():
        return False
    return few_rows.kernel() is not None


def widen_linears(model: nn.Module) -> int:
    """Replace every bfloat16 ``nn.Linear`` of ``model`` on the CPU by a :class:`WidenedLinear`;
    returns how many were replaced."""
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if (
                type(child) is nn.Linear
                and child.weight.dtype == torch.bfloat16
                and child.weight.device.type == "cpu"
            ):
                setattr(parent, name, WidenedLinear(child))
                count += 1
    if count:
        log.info(
            "bfloat16 without bfloat16 arithmetic here: %d products in float32 over bfloat16 "
            "weights (up to %d rows by numba)",
            count,
            few_rows.WIDENED_MAX_ROWS,
        )
    return count
