"""Products of a few rows at the speed the weights stream from memory: numba kernels.

A decoding step multiplies one row per sequence by every weight matrix, and oneDNN's packed
products read the weights more slowly than memory delivers them for so few rows:

- **float32** (what the agent runs on CPUs without AVX-512 BF16, most laptops; galactica-125m
  is its default model): for one row, oneDNN read galactica-125m's layer matrices at 19-22 GB/s
  on a 2-core AMD EPYC with AVX-512, the kernel at 25-26 GB/s; a whole float32 decoding step of
  one sequence ran 1.16-1.35x as fast, of two sequences 1.26-1.44x (``benchmarks/products.py``,
  1 and 2 threads). At three rows it is no longer faster than oneDNN's AVX-512 code, so it
  takes up to :data:`MAX_ROWS` there. With AVX2 code (what a laptop without AVX-512 runs:
  ``products.py --avx2`` on a Zen 4 EPYC), oneDNN read them at 15-17 GB/s and the kernel at
  23-31; steps of one to three sequences ran 1.8-2.3x as fast, of four 1.3-1.8x, of five
  (oneDNN for both) 1.0x: where numba emits AVX2 code it takes :data:`AVX2_MAX_ROWS`.
- **bfloat16**, one or two rows (one or two sequences decoding: a scientist's own
  completions): the kernel widens each bfloat16 (rows and weight, as their bits) to float32 in
  registers and rounds the float32 sum once, as oneDNN does. One row: oneDNN read
  galactica-125m's layer matrices at 17-19 GB/s and its output projection at 13-18, the kernel
  at 25-27 and 18-28 GB/s; a whole galactica-125m step ran 1.40-1.62x as fast (1 and 2
  threads, ``benchmarks/products.py``). Rows read as bits rather than float32 made the kernel
  1.0-1.6x as fast at one and two rows (BENCHMARKS.md, eleventh round), and two rows then
  took half oneDNN's time on an AMD EPYC with AVX-512 BF16 (2 threads: 6.1 against 12.3 ms for
  the layer matrices); at four rows it was no faster, so it takes :data:`BF16_MAX_ROWS`.

- **int8** (``--quantize 8bit``: int8 weights in a bfloat16 or float32 model, :class:`Int8Rows`),
  one or two rows (one where numba emits AVX2 code): torch's dynamic int8 product (fbgemm)
  rounds each input row to 8 bits and runs as fast at one row as at eight; the kernel
  multiplies the rows (float32, or bfloat16 widened) by the int8 weights and scales the float32
  sums, rounding only the weights (weight-only int8, closer to the unquantized model; tested).
  A whole galactica-125m step, each layer one numba call (:mod:`.fused_layers`), on a 2-core
  AMD EPYC (Zen 4): one sequence 1.4-1.6x as fast with 2 threads, 1.1-1.2x with one; two
  sequences 1.2-1.3x with 2 threads but 0.8-1.0x with one (``benchmarks/products.py --dtype
  int8``); a float32 model's, with AVX2 code, one sequence 1.2-1.4x (``--avx2 --dtype int8``).
  Converting each int8 weight to float32 makes the kernel compute-bound at about 16 G
  weights/s per core there, about the memory's rate at one row.

The kernels read the plain ``[N, K]`` weight, which oneDNN's packed copy replaces, so
:func:`.cpu.pack_linears` keeps the plain weights as well where :func:`keeps_plain` allows: at
most :data:`MEMORY_SHARE` of the memory available at load, and in bfloat16 at most
:data:`BF16_PLAIN_LIMIT` (galactica-125m: 170 MB beside 250 MB of weights in bfloat16, 340 MB
beside 500 MB in float32). galactica-1.3b's layer matrices are 1.12-1.42x as fast with the
kernel, but their copy (2.4 GB in bfloat16) would double the model's memory on a laptop, so
it is left out. Prompts and more rows run oneDNN's packed product, or in bfloat16
:mod:`.blocked`'s kernel where it runs (which also decodes galactica-1.3b's one and two rows
faster than oneDNN, from its single blocked copy).

numba compiles the kernels once per machine (a second or two, cached on disk). Where numba is
missing or fails, or ``$GALACTICA_FEW_ROW_PRODUCT=torch``, oneDNN runs alone (:func:`kernel`
says why, once, in the log). Results are float32 sums in another order than oneDNN's: in
float32 equal to about 1e-6, the same greedy tokens; in bfloat16 rounded once from float32
sums, as oneDNN's, so within one bfloat16 step of its result (tested).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from . import numba_kernels

log = logging.getLogger(__name__)

#: ``$GALACTICA_FEW_ROW_PRODUCT``: "auto" (the kernel where numba works) or "torch"
PRODUCT_ENV = "GALACTICA_FEW_ROW_PRODUCT"

#: up to this many rows the kernel was measured faster than oneDNN's packed product
#: (``benchmarks/products.py``, galactica-125m float32 steps: 1 row 1.16-1.35x, 2 rows
#: 1.26-1.44x; at 3 rows 0.98-1.05x, its layer products 0.78-0.98x with AVX-512 code)
MAX_ROWS = 2

#: float32 where numba emits AVX2 code (no AVX-512: most laptops): against oneDNN's AVX2
#: code, galactica-125m's layer products 1.4-1.9x at 2 and 3 rows, 1.2-1.4x at 4, 1.05-1.15x
#: at 6, 0.9-1.05x at 8 (a Zen 4 EPYC running AVX2 code: ``products.py --avx2``)
AVX2_MAX_ROWS = 4

#: bfloat16 on a CPU with bfloat16 arithmetic: up to two rows (galactica-125m's layer
#: matrices, 2 threads, AVX-512 BF16: 1 row 1.4x, 2 rows 2x oneDNN's packed product; 3 rows
#: 1.1x, 4 rows 1.0x, so oneDNN (or :mod:`.blocked`'s kernel) from three)
BF16_MAX_ROWS = 2

#: bfloat16 weights on a CPU without bfloat16 arithmetic (:mod:`.widened`): up to this many
#: rows by the kernel, more by a float32 copy of the weight. Measured on a 2-core AMD EPYC (Zen 1,
#: AVX2), galactica-125m's layer matrices and output projection, 1 and 2 threads: the kernel
#: was faster at every row count up to 32 (32 rows: 1.4-2.6x the copy's product;
#: ``benchmarks/products.py --widened``)
WIDENED_MAX_ROWS = 32

#: int8 weights (:class:`Int8Rows`): up to this many rows by the kernel, more by torch's dynamic
#: int8 product (galactica-125m steps, 2 threads: one row 1.4-1.6x, two 1.2-1.3x; three 1.0x)
INT8_MAX_ROWS = 2

#: int8 where numba emits AVX2 code: its two-row products were 0.6-0.7x torch's (steps of two
#: sequences 0.7-1.0x), one row 1.1-1.2x (steps 1.2-1.4x; ``products.py --avx2 --dtype int8``)
INT8_AVX2_MAX_ROWS = 1

#: the share of the available memory a plain copy of the weights may take
MEMORY_SHARE = 0.125

#: bfloat16's (and int8's) plain copy at most this many bytes: galactica-125m's (bfloat16
#: 170 MB) gains 1.40-1.62x per step; galactica-1.3b's (2.4 GB) would double the model's
#: memory for 1.12-1.42x. int8: galactica-125m's 124 MB, not galactica-1.3b's 1.3 GB
BF16_PLAIN_LIMIT = 512 * 2**20

NO_BIAS = np.zeros(0, dtype=np.float32)
NO_BF16_BIAS = np.zeros(0, dtype=np.uint16)
#: what each kernel takes for "no bias"
_NO_BIASES = {torch.float32: NO_BIAS, torch.bfloat16: NO_BF16_BIAS}


class Kernels(NamedTuple):
    """The compiled kernels (:mod:`._product_kernel`)."""

    float32: Callable  # few_row_product: up to MAX_ROWS rows
    bfloat16: Callable  # rows_bf16: bfloat16 bits in and out (widened too: more rows)
    int8: Callable  # rows_int8: bfloat16 bits in and out, int8 weights


def _build() -> Kernels:
    from ._product_kernel import few_row_product, rows_bf16, rows_int8

    weight, out = np.zeros((3, 8), np.float32), np.empty((1, 3), np.float32)
    few_row_product(np.zeros((1, 8), np.float32), weight, NO_BIAS, True, out)
    bits = np.zeros((3, 8), np.uint16)
    rows_bf16(bits[:1], bits, NO_BF16_BIAS, True, np.empty((1, 3), np.uint16))
    scale, rows, q = np.ones(3, np.float32), np.zeros((1, 8), np.float32), np.zeros((3, 8), np.int8)
    rows_int8(rows, q, scale, NO_BF16_BIAS, True, bits[:1, :3])  # a bfloat16 model's
    rows_int8(rows, q, scale, NO_BIAS, True, rows[:, :3].copy())  # a float32 model's
    return Kernels(few_row_product, rows_bf16, rows_int8)


#: the kernels, or None (``numba_kernels.loader``); the engine asks at model load
kernel = numba_kernels.loader(PRODUCT_ENV, "few-row products", "oneDNN", _build)


def row_limit(dtype: torch.dtype) -> int:
    """The most rows the kernel for weights of ``dtype`` takes: :data:`MAX_ROWS` (float32),
    :data:`BF16_MAX_ROWS` (bfloat16), :data:`INT8_MAX_ROWS` (int8), 0 (no kernel for it);
    where numba emits no AVX-512 code, :data:`AVX2_MAX_ROWS` (float32) and
    :data:`INT8_AVX2_MAX_ROWS` (int8)."""
    narrow = dtype in (torch.float32, torch.int8) and kernel() is not None
    if narrow and not numba_kernels.emits_avx512():
        return AVX2_MAX_ROWS if dtype == torch.float32 else INT8_AVX2_MAX_ROWS
    limits = {torch.float32: MAX_ROWS, torch.bfloat16: BF16_MAX_ROWS, torch.int8: INT8_MAX_ROWS}
    return limits.get(dtype, 0)


def keeps_plain(dtype: torch.dtype, plain_bytes: int) -> bool:
    """Whether a model with weights in ``dtype`` keeps a plain copy of them (``plain_bytes``)
    beside oneDNN's (or fbgemm's) packed one, for the kernels: float32 where
    :func:`affordable`, bfloat16 and int8 where also at most :data:`BF16_PLAIN_LIMIT`; no
    other dtype."""
    if dtype in (torch.bfloat16, torch.int8) and plain_bytes > BF16_PLAIN_LIMIT:
        log.info(
            "%s few-row products: the packed weights alone (a plain copy of them, %.1f GB, is "
            "more than %d MB)",
            str(dtype).removeprefix("torch."),
            plain_bytes / 1e9,
            BF16_PLAIN_LIMIT >> 20,
        )
        return False
    return dtype in (torch.float32, torch.bfloat16, torch.int8) and affordable(plain_bytes)


def affordable(plain_bytes: int) -> bool:
    """Whether a plain copy of the weights (``plain_bytes``) beside oneDNN's packed one fits
    the budget: at most :data:`MEMORY_SHARE` of the memory available now, and the kernel runs
    here."""
    if kernel() is None:
        return False
    try:
        available = _available_memory()
    except (OSError, ValueError):
        return False
    if plain_bytes > MEMORY_SHARE * available:
        log.info(
            "few-row products: oneDNN (a plain copy of the weights, %.1f GB, is more "
            "than %.0f%% of the %.1f GB available)",
            plain_bytes / 1e9,
            MEMORY_SHARE * 100,
            available / 1e9,
        )
        return False
    return True


def _available_memory() -> int:
    """MemAvailable from /proc/meminfo, in bytes."""
    with open("/proc/meminfo") as info:
        for line in info:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise ValueError("no MemAvailable in /proc/meminfo")


class FewRows:
    """``x @ weight.T + bias`` by a kernel for ``x`` of up to :data:`MAX_ROWS` rows (float32)
    or :data:`BF16_MAX_ROWS` (bfloat16), over a layer's own weight and bias (numpy views of
    their memory, remade if it moves). ``widened``: a bfloat16 weight on a CPU without bfloat16
    arithmetic, up to :data:`WIDENED_MAX_ROWS` rows (:mod:`.widened`)."""

    def __init__(
        self, weight: torch.Tensor, bias: torch.Tensor | None, widened: bool = False
    ) -> None:
        self.weight, self.bias = weight, bias
        self.size, self.features = weight.shape[1], weight.shape[0]
        self.dtype = weight.dtype
        self.widened = widened and self.dtype == torch.bfloat16
        kernels = kernel()
        #: the kernel for this weight's dtype, or None (every call then returns None)
        self.run: Callable | None = None
        if kernels is not None and self.dtype == torch.float32:
            self.run = kernels.float32
        elif kernels is not None and self.dtype == torch.bfloat16:
            self.run = kernels.bfloat16
        self.max_rows = 0
        if self.run is not None:
            self.max_rows = WIDENED_MAX_ROWS if self.widened else row_limit(self.dtype)
        self._views: tuple[int, np.ndarray, np.ndarray] | None = None

    def __call__(self, x: torch.Tensor, activation: str = "none") -> torch.Tensor | None:
        """The product, then ``activation`` ("none" or "gelu": GELU as oneDNN's post-op
        computes it), or None where the kernel does not apply (more rows, another dtype,
        gradients wanted): the caller then runs its own. Called for every product of a
        decoding step, between products that empty the caches: kept to a few operations."""
        rows = x.numel() // self.size
        if (
            self.run is None
            or rows > self.max_rows
            or x.dtype != self.dtype
            or (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad))
        ):
            return None
        arrays = self._arrays()
        # the dtype said: a model loading in another thread may change torch's default
        out = torch.empty((*x.shape[:-1], self.features), dtype=self.dtype)
        x = x.detach().reshape(rows, self.size).contiguous()
        with numba_kernels.LOCK:
            numba_kernels.match_threads()
            # bfloat16: GELU in float32 before rounding, as oneDNN
            self.run(self._rows(x), *arrays, activation == "gelu", _memory(out, rows))
        return out

    def _rows(self, x: torch.Tensor) -> np.ndarray:
        """The rows as the kernel takes them: their memory (bfloat16 as bits)."""
        return _memory(x, x.shape[0])

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        address = self.weight.data_ptr()
        if self._views is None or self._views[0] != address:
            bias = _array(self.bias) if self.bias is not None else _NO_BIASES[self.dtype]
            self._views = (address, _array(self.weight), bias)
        return self._views[1], self._views[2]


def _memory(tensor: torch.Tensor, rows: int) -> np.ndarray:
    """A contiguous float32 or bfloat16 tensor's memory as ``rows`` numpy rows (bfloat16 as
    bits), with no copy and fewer torch calls than :func:`_array`: for every decoding product."""
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.uint16).numpy().reshape(rows, -1)
    return tensor.view(rows, -1).numpy()


def _array(tensor: torch.Tensor) -> np.ndarray:
    """A tensor's memory as numpy: float32 as it is, bfloat16 as its bits (uint16)."""
    tensor = tensor.detach().contiguous()
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.uint16).numpy()
    return tensor.numpy()


class Int8Rows(FewRows):
    """:class:`FewRows` for int8 weights (:class:`.int8.Int8Linear`'s plain copy, one float32
    scale per row) and the rows of a bfloat16 or float32 model (``dtype``, as its bias): up to
    ``row_limit(torch.int8)`` rows by the kernel, which rounds only the weights (weight-only
    int8), where torch's dynamic kernel also rounds each input row to 8 bits."""

    def __init__(
        self,
        weight: torch.Tensor,
        scale: torch.Tensor,
        bias: torch.Tensor | None,
        dtype: torch.dtype = torch.bfloat16,
    ) -> None:
        self.weight, self.bias, self.dtype, self.widened = weight.contiguous(), bias, dtype, False
        self.scale = scale.float().contiguous()
        self.size, self.features = weight.shape[1], weight.shape[0]
        kernels = kernel()
        usable = dtype in _NO_BIASES and (bias is None or bias.dtype == dtype)
        self.run: Callable | None = kernels.int8 if kernels is not None and usable else None
        self.max_rows = row_limit(torch.int8) if self.run is not None else 0
        bias_array = _array(bias) if bias is not None else _NO_BIASES.get(dtype, NO_BIAS)
        self._int8_views = (self.weight.numpy(), self.scale.numpy(), bias_array)

    def _rows(self, x: torch.Tensor) -> np.ndarray:
        """float32 rows (a bfloat16 model's widened): the kernel converts only the weight."""
        return x.float().numpy()

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The kernel's arrays: the int8 weight, the scales, the bias (bfloat16 as bits; or
        empty)."""
        return self._int8_views
