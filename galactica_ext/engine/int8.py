"""8-bit weights on the CPU: every linear layer's weight as int8, one scale per output channel.

Decoding is memory-bound, so weights of one byte instead of two should decode up to twice as
fast as bfloat16. bitsandbytes' 8-bit layers are built for CUDA; on the CPU they are slow, so
``--quantize 8bit`` on a CPU uses torch's own kernels instead (bitsandbytes stays for CUDA).

Weights are quantized symmetrically per output channel (``w ≈ q * scale[row]``, ``q`` in
[-127, 127]); two kernels multiply by them:

- ``dynamic``: torch's quantized ``linear_dynamic`` (fbgemm / oneDNN, AVX-512 VNNI where the
  CPU has it), which also quantizes each input row to uint8 on the fly, as CTranslate2's int8
  does. Measured on an AMD EPYC (Zen 5), one thread, 12 layers of the galactica-1.3b shape
  (out of cache): 17 ms per pass, against 33 ms for the oneDNN-prepacked bfloat16 weights.
- ``weight-only``: ``aten._weight_int8pack_mm`` (what gpt-fast uses): bfloat16 activations,
  weights dequantized in the kernel, so only the weights are rounded. On the same machine it is
  *slower* than prepacked bfloat16 (38 ms per pass; with float32 activations ~10x slower
  still, so float32 inputs are cast to bfloat16 for it).

``auto`` picks ``dynamic`` where torch has a quantized engine for this CPU, else
``weight-only``, else refuses with the reason.

Decoding steps of one or two sequences (bfloat16 or float32 rows) skip both where the plain
int8 weights stay beside the packed ones (:func:`keeps_plain`: galactica-125m, not
galactica-1.3b): a numba kernel (:class:`.few_rows.Int8Rows`) multiplies the rows by them,
rounding only the weights, and each decoder layer of such a step is one numba call
(:mod:`.fused_layers`).
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Literal

import torch
from torch import nn

from . import few_rows
from .cpu import kept_or_placeholder

log = logging.getLogger(__name__)

Kernel = Literal["dynamic", "weight-only"]
KERNELS = ("auto", "dynamic", "weight-only")
#: overrides ``auto`` (e.g. to compare the kernels without changing code)
KERNEL_ENV = "GALACTICA_INT8_KERNEL"


def _dynamic_engine() -> str | None:
    engines = torch.backends.quantized.supported_engines
    return next((e for e in ("x86", "fbgemm", "onednn") if e in engines), None)


def _has_weight_only() -> bool:
    return hasattr(torch.ops.aten, "_weight_int8pack_mm")


def pick_kernel(kernel: str = "auto") -> Kernel:
    """The kernel to use; ``auto`` (or ``$GALACTICA_INT8_KERNEL``) as the module says.
    Raises ValueError naming what is missing where neither works."""
    if kernel == "auto":
        kernel = os.environ.get(KERNEL_ENV) or "auto"
    if kernel not in KERNELS:
        raise ValueError(f"int8 kernel {kernel!r} is not one of {', '.join(KERNELS)}")
    dynamic, weight_only = _dynamic_engine() is not None, _has_weight_only()
    if kernel in ("auto", "dynamic") and dynamic:
        return "dynamic"
    if kernel in ("auto", "weight-only") and weight_only:
        return "weight-only"
    raise ValueError(
        f"8-bit weights on the CPU need torch's quantized engines (x86/fbgemm/onednn) or "
        f"aten._weight_int8pack_mm; torch {torch.__version__} here has "
        f"engines {torch.backends.quantized.supported_engines} and "
        f"_weight_int8pack_mm={'yes' if weight_only else 'no'} (asked for {kernel!r}). "
        "Load in bfloat16 or float32 instead."
    )


def quantize_weight(
    weight: torch.Tensor, block_rows: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: ``(q, scale)`` with ``weight ≈ q * scale[:, None]``, computed
    ``block_rows`` rows at a time (no float32 copy of a whole 50,000-row output projection)."""
    rows = weight.shape[0]
    q = torch.empty(weight.shape, dtype=torch.int8)
    scale = torch.empty(rows, dtype=torch.float32)
    for start in range(0, rows, block_rows):
        block = weight[start : start + block_rows].detach().to(torch.float32, copy=True)
        s = (block.abs().amax(dim=1) / 127).clamp_(min=1e-10)
        q[start : start + block_rows] = block.div_(s[:, None]).round_().clamp_(-127, 127)
        scale[start : start + block_rows] = s
    return q, scale


class Int8Linear(nn.Module):
    """``nn.Linear`` over int8 weights (inference only); outputs in the input's dtype.

    ``weight`` stays a parameter of the original shape: the shared tensor where it is tied
    (output projection and embeddings), else an int8 placeholder on the meta device, so
    parameter counts are unchanged and byte counts show one byte per weight.

    ``few_rows_too``: a plain copy of the int8 weight stays beside the dynamic kernel's packed
    one (the weight-only kernel's own is shared), for :class:`.few_rows.Int8Rows`: products of
    one or two rows (bfloat16 or float32), a decoding step's, by a numba kernel.
    """

    #: :func:`.cpu.fuse_gelu` may set ``activation`` to "gelu"
    fuses_gelu = True

    def __init__(
        self, linear: nn.Linear, kernel: Kernel, tied: bool, few_rows_too: bool = False
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.kernel = kernel
        #: applied to the product: "none" or "gelu" (the exact GELU, :func:`.cpu.fuse_gelu`)
        self.activation = "none"
        q, scale = quantize_weight(linear.weight)
        bias = linear.bias.detach() if linear.bias is not None else None
        if kernel == "dynamic":
            engine, before = _dynamic_engine(), torch.backends.quantized.engine
            with warnings.catch_warnings():  # torch marks quantized tensors as deprecated
                warnings.simplefilter("ignore")
                try:
                    torch.backends.quantized.engine = engine
                    qw = torch._make_per_channel_quantized_tensor(
                        q, scale.double(), torch.zeros_like(scale, dtype=torch.long), 0
                    )
                    self.packed = torch.ops.quantized.linear_prepack(
                        qw, None if bias is None else bias.float()
                    )
                finally:
                    torch.backends.quantized.engine = before
        else:
            self.register_buffer("q", q)
            self.register_buffer("scale", scale.to(torch.bfloat16))
        # kept for counting (the dynamic kernel holds a float32 copy inside its packed weight)
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)
        self.weight = kept_or_placeholder(linear, tied, torch.int8)
        #: products of up to few_rows.row_limit(int8) rows by numba (the model's dtype), or None
        dtype = linear.weight.dtype
        self.few_rows = few_rows.Int8Rows(q, scale, self.bias, dtype) if few_rows_too else None
        del q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.few_rows is not None:
            out = self.few_rows(x, self.activation)
            if out is not None:
                return out
        shape = x.shape
        rows = x.reshape(-1, self.in_features)
        if self.kernel == "dynamic":
            out = torch.ops.quantized.linear_dynamic(rows.float(), self.packed, True)
        else:
            out = torch.ops.aten._weight_int8pack_mm(rows.to(torch.bfloat16), self.q, self.scale)
            if self.bias is not None:
                out = out + self.bias.to(out.dtype)  # the dynamic kernel adds its own
        if self.activation == "gelu":  # in float32, rounded once below (as the kernel does)
            out = nn.functional.gelu(out.float())
        return out.to(x.dtype).reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        post = "" if self.activation == "none" else f", then {self.activation}"
        if self.few_rows is not None:
            post += f", up to {self.few_rows.max_rows} rows: numba"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, {self.kernel}{post}"
        )


def keeps_plain(linear_weights: int, kernel: str = "auto") -> bool:
    """Whether int8 linears keep a plain copy of their weights for :class:`.few_rows.Int8Rows`,
    for a model of ``linear_weights`` weights in its linear layers: where
    :func:`.few_rows.keeps_plain` allows it for the dynamic kernel (the weight-only kernel's is
    there anyway)."""
    if pick_kernel(kernel) == "weight-only":
        return few_rows.kernel() is not None
    return few_rows.keeps_plain(torch.int8, linear_weights)


def linear_weights(config) -> int:
    """How many weights an OPT model of ``config`` has in its linear layers (the output
    projection included): its int8 bytes."""
    width, hidden = config.hidden_size, config.ffn_dim
    layer = 4 * width * width + 2 * width * hidden
    return config.num_hidden_layers * layer + config.vocab_size * config.word_embed_proj_dim


def quantize_linears(model: nn.Module, kernel: str = "auto", plain: bool | None = None) -> int:
    """Replace every ``nn.Linear`` of ``model`` (on the CPU) by an :class:`Int8Linear`, one at a
    time (each dense weight is freed once replaced); returns how many. ``plain``: whether they
    keep a plain copy for :mod:`.few_rows` (None: as :func:`keeps_plain` decides for these
    linears; a model quantized layer by layer decides once, for all of them). Raises
    ValueError where this torch has no int8 kernel for the CPU."""
    chosen = pick_kernel(kernel)
    linears = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is nn.Linear and child.weight.device.type == "cpu"
    ]
    if plain is None:
        plain = keeps_plain(sum(child.weight.numel() for *_, child in linears), chosen)
    users: dict[int, int] = {}
    for module in model.modules():
        for param in module.parameters(recurse=False):
            users[id(param)] = users.get(id(param), 0) + 1
    count = len(linears)
    with torch.no_grad():
        while linears:
            parent, name, child = linears.pop()
            tied = users.get(id(child.weight), 0) > 1
            setattr(parent, name, Int8Linear(child, chosen, tied, few_rows_too=plain))
            del child
    log.debug("int8 weights (%s kernel) for %d linear layers", chosen, count)
    return count
