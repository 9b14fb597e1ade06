"""float32 products of one or two rows at the speed the weight streams from memory: a numba
kernel.

float32 is what the agent runs on CPUs without AVX-512 BF16, most laptops, and galactica-125m
is its default model. A decoding step multiplies one row per sequence by every weight matrix.
For one row, oneDNN's packed float32 product read galactica-125m's layer matrices at 19-22
GB/s on a 2-core AMD EPYC, and at 15-22 GB/s with its AVX2 code (what a laptop without
AVX-512 runs); this kernel read them at 25-26 GB/s, and 21-31 GB/s as AVX2 code. A whole
float32 decoding step of one sequence ran 1.16-1.35x as fast, of two sequences 1.26-1.44x, with
AVX-512 or AVX2 code (``benchmarks/products.py``, 1 and 2 threads). At three rows it is no
longer faster than oneDNN with AVX-512, so it takes up to :data:`MAX_ROWS`.

It reads the plain ``[N, K]`` weight, which oneDNN's packed copy replaces, so
:func:`.cpu.pack_linears` keeps the plain weights as well, where they take at most
:data:`MEMORY_SHARE` of the memory available at load (galactica-125m: 340 MB beside 500 MB of
weights; galactica-1.3b's 4.8 GB are left out on a 16 GB machine, and oneDNN runs alone).
Prompts and three or more sequences run oneDNN's packed product.

numba compiles the kernel once per machine (about a second, cached on disk). Where numba is
missing or fails, or ``$GALACTICA_FEW_ROW_PRODUCT=torch``, oneDNN runs alone
(:func:`kernel` says why, once, in the log). Results are float32 sums in another order than
oneDNN's: equal to about 1e-6, the same greedy tokens (tested).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

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

#: the share of the available memory a plain copy of the float32 weights may take
MEMORY_SHARE = 0.125

NO_BIAS = np.zeros(0, dtype=np.float32)


def _build() -> Callable:
    from ._product_kernel import few_row_product

    weight, out = np.zeros((3, 8), np.float32), np.empty((1, 3), np.float32)
    few_row_product(np.zeros((1, 8), np.float32), weight, NO_BIAS, out)
    return few_row_product


#: the kernel, or None (``numba_kernels.loader``); the engine asks at model load
kernel = numba_kernels.loader(PRODUCT_ENV, "float32 few-row products", "oneDNN", _build)


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
            "float32 few-row products: oneDNN (a plain copy of the weights, %.1f GB, is more "
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
    """``x @ weight.T + bias`` by the kernel for ``x`` of up to :data:`MAX_ROWS` rows, over a
    layer's own float32 weight and bias (numpy views of their memory, remade if it moves)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        self.weight, self.bias = weight, bias
        self.size, self.features = weight.shape[1], weight.shape[0]
        run = kernel()
        #: None where the kernel does not apply to this weight (every call then returns None)
        self.run = run if weight.dtype == torch.float32 else None
        self._views: tuple[int, np.ndarray, np.ndarray] | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor | None:
        """The product, or None where the kernel does not apply (more rows, another dtype,
        gradients wanted): the caller then runs its own. Called for every product of a
        decoding step, between products that empty the caches: kept to a few operations."""
        rows = x.numel() // self.size
        if (
            rows > MAX_ROWS
            or self.run is None
            or x.dtype != torch.float32
            or (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad))
        ):
            return None
        weight, bias = self._arrays()
        # the dtype said: a model loading in another thread may change torch's default
        out = torch.empty((*x.shape[:-1], self.features), dtype=torch.float32)
        with numba_kernels.LOCK:
            numba_kernels.match_threads()
            self.run(
                x.detach().reshape(rows, self.size).contiguous().numpy(),
                weight,
                bias,
                out.view(rows, self.features).numpy(),
            )
        return out

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        address = self.weight.data_ptr()
        if self._views is None or self._views[0] != address:
            weight = self.weight.detach().contiguous().numpy()
            bias = NO_BIAS if self.bias is None else self.bias.detach().contiguous().numpy()
            self._views = (address, weight, bias)
        return self._views[1], self._views[2]
