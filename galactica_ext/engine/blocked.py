"""bfloat16 products by AVX-512 BF16's dot product over weights blocked for it: a C kernel.

oneDNN's packed bfloat16 product reads the weights well below the memory's rate for the few rows
of a decoding step, and keeping a plain copy for :mod:`.few_rows`' kernel beside it doubles the
weights' memory (galactica-1.3b: 2.4 GB), so the largest models decoded through oneDNN alone.
This kernel (``blocked_kernel.c``) reads one copy of the weights, blocked as
``[features / 64][size / 2][64][2]``: 64 outputs per block, and the two values of each pair of
inputs side by side, which is what ``vdpbf16ps`` multiplies and sums into one float32 lane. Each
pair of a row's inputs is broadcast, so a block streams from memory once per six rows, with no
sums across lanes. Measured against oneDNN's packed product (4 layers' matrices, ms, a 2-core
AMD EPYC Zen 4 with AVX-512 BF16; BENCHMARKS.md, sixteenth round): galactica-1.3b, 2 threads,
1 row 13.7 vs 19.5, 4 rows 14.1 vs 17.0, 16 rows 23.0 vs 24.7, 256 rows (a prompt's chunk) 241
vs 246; galactica-125m, 1 thread, 4 rows 8.8 vs 13.9. So it replaces oneDNN's packed copy for
every product of a bfloat16 model, prompts included, where the CPU has AVX-512 BF16 but no
AMX (oneDNN's AMX code computes prompts far faster than this kernel can: unmeasured, so left to
oneDNN there; ``$GALACTICA_BLOCKED_PRODUCT=always`` takes the kernel anyway, to measure it).

C, not numba: numba has no bfloat16 type and LLVM does not emit ``vdpbf16ps`` from widened
products. The source is compiled once per machine by the C compiler (``$CC``, else ``cc``) into
the user's cache (``$GALACTICA_KERNEL_CACHE``, else ``~/.cache/galactica-ext/kernels``, readable
by the user alone) and checked on small products against float32 sums before use; where
anything fails (no compiler, another CPU, another OS), oneDNN runs as before and the log says
why. Results: float32 sums in another order than oneDNN's, rounded once to bfloat16 (nearest
even), so within one bfloat16 step of its result (tested); GELU (fc1's post-op) by an erf
approximation within 3e-7, far below that step.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import torch

from . import numba_kernels

log = logging.getLogger(__name__)

#: ``$GALACTICA_BLOCKED_PRODUCT``: "auto" (the kernel where the CPU has AVX-512 BF16 and no AMX),
#: "always" (wherever it has AVX-512 BF16), or "torch" (oneDNN's packed product)
PRODUCT_ENV = "GALACTICA_BLOCKED_PRODUCT"
CHOICES = ("auto", "always", "torch")

#: where the compiled kernel is kept (default ``~/.cache/galactica-ext/kernels``)
CACHE_ENV = "GALACTICA_KERNEL_CACHE"

SOURCE = Path(__file__).with_name("blocked_kernel.c")
FLAGS = ("-O3", "-mavx512f", "-mavx512bw", "-mavx512bf16", "-fPIC", "-shared")

#: outputs per block (``BLOCK`` in the C source)
BLOCK = 64

#: the CPU features the compiled code uses (/proc/cpuinfo's names)
NEEDED = ("avx512f", "avx512bw", "avx512_bf16")


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cache_dir() -> Path:
    """Where compiled kernels are kept: ``$GALACTICA_KERNEL_CACHE``, else
    ``$XDG_CACHE_HOME/galactica-ext/kernels`` (``~/.cache`` by default)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "galactica-ext" / "kernels"


def compiled_library() -> Path:
    """The kernel compiled for this source, flags and compiler: from the cache, or compiled into
    it now (into a temporary name, then renamed, so that two processes never load half a file).
    RuntimeError where the directory is not the user's alone, or there is no compiler or it
    fails."""
    directory = cache_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = directory.stat()
    if status.st_uid != os.getuid() or status.st_mode & 0o022:
        raise RuntimeError(f"{directory} is not the user's own (others could write code there)")
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise RuntimeError("no C compiler ($CC, cc or gcc)")
    try:
        version = subprocess.run(
            [compiler, "--version"], capture_output=True, text=True, timeout=60, check=True
        ).stdout.split("\n", 1)[0]
    except (OSError, subprocess.SubprocessError) as err:
        raise RuntimeError(f"{compiler} --version failed: {err}") from err
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source + " ".join(FLAGS).encode() + version.encode()).hexdigest()
    library = directory / f"blocked-{digest[:20]}.so"
    if library.exists():
        return library
    handle, partial = tempfile.mkstemp(suffix=".so", dir=directory)
    os.close(handle)
    try:
        done = subprocess.run(
            [compiler, *FLAGS, str(SOURCE), "-o", partial],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {done.stderr.strip()[-500:]}")
        os.chmod(partial, 0o700)
        os.replace(partial, library)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return library


def _build() -> Callable:
    """Compile (or load) the kernel, wrap it in a numba loop that splits the blocks between
    numba's threads, and check it on small products; raises where any of it fails."""
    missing = [flag for flag in NEEDED if flag not in cpu_flags()]
    if missing:
        raise RuntimeError(f"the CPU lacks {', '.join(missing)}")
    library = ctypes.CDLL(str(compiled_library()))
    product = library.blocked_product
    product.argtypes = [
        ctypes.c_uint64,  # rows' address
        ctypes.c_int64,  # rows
        ctypes.c_int64,  # size (inputs)
        ctypes.c_uint64,  # blocked weight's address
        ctypes.c_uint64,  # bias's address, 0: none
        ctypes.c_int32,  # GELU
        ctypes.c_uint64,  # output's address
        ctypes.c_int64,  # features (outputs)
        ctypes.c_int64,  # first block
        ctypes.c_int64,  # end block
    ]
    product.restype = None
    from numba import njit, prange

    # not cached on disk: it holds the library's address in this process
    @njit(parallel=True, nogil=True)
    def run(x, rows, size, weight, bias, gelu, out, features):  # pragma: no cover - numba
        for block in prange((features + BLOCK - 1) // BLOCK):
            product(x, rows, size, weight, bias, gelu, out, features, block, block + 1)

    _check(run)
    return run


def _check(run: Callable) -> None:
    """RuntimeError unless the kernel's products (1 to 13 rows, with and without bias and GELU)
    are within a bfloat16 step of float32 sums."""
    seeded = torch.Generator().manual_seed(0)
    features, size = 2 * BLOCK + 40, 96  # a last block not whole
    weight = torch.randn(features, size, generator=seeded).to(torch.bfloat16)
    bias = torch.randn(features, generator=seeded).to(torch.bfloat16)
    blocked, padded_bias = block(weight), _padded(bias)
    for rows in (1, 2, 5, 6, 13):
        x = torch.randn(rows, size, generator=seeded).to(torch.bfloat16)
        for with_bias, gelu in ((False, False), (True, True)):
            out = torch.empty(rows, features, dtype=torch.bfloat16)
            address = padded_bias.data_ptr() if with_bias else 0
            with numba_kernels.LOCK:
                run(x.data_ptr(), rows, size, blocked.data_ptr(), address, gelu, out.data_ptr(),
                    features)  # fmt: skip
            expected = x.float() @ weight.float().T + (bias.float() if with_bias else 0)
            if gelu:
                expected = torch.nn.functional.gelu(expected)
            if not torch.allclose(out.float(), expected, rtol=2**-7, atol=1e-3):
                raise RuntimeError(f"its products disagree with float32 sums ({rows} rows)")


@lru_cache(maxsize=1)
def kernel() -> Callable | None:
    """The kernel (a numba function over the rows', weight's, bias's and output's addresses), or
    None where ``$GALACTICA_BLOCKED_PRODUCT`` or the CPU say oneDNN, or it cannot be built here (the
    reason logged once). ``kernel.cache_clear()`` makes the next call look again."""
    choice = numba_kernels.wanted(PRODUCT_ENV, CHOICES)
    if choice == "torch":
        log.info("bfloat16 products: oneDNN (%s=torch)", PRODUCT_ENV)
        return None
    if choice == "auto" and any(flag.startswith("amx") for flag in cpu_flags()):
        log.info("bfloat16 products: oneDNN (the CPU has AMX; %s=always to measure)", PRODUCT_ENV)
        return None
    try:
        built = _build()
    except Exception as err:  # no compiler, another CPU, numba missing, a wrong result
        log.info("bfloat16 products: oneDNN (the blocked kernel cannot run here: %s)", err)
        return None
    log.info("bfloat16 products: the blocked AVX-512 BF16 kernel")
    return built


kernel.env = PRODUCT_ENV  # type: ignore[attr-defined]


def fits(weight: torch.Tensor) -> bool:
    """Whether the kernel takes this weight: bfloat16 ``[features, size]`` with pairs of inputs."""
    return (
        weight.dtype == torch.bfloat16
        and weight.dim() == 2
        and weight.shape[0] > 0
        and weight.shape[1] % 2 == 0
    )


def _padded(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` with zero rows after its first dimension's values, up to whole blocks."""
    rest = -tensor.shape[0] % BLOCK
    if not rest:
        return tensor
    return torch.cat([tensor, tensor.new_zeros((rest, *tensor.shape[1:]))])


def block(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` (``[features, size]``) in the kernel's layout ``[blocks][size / 2][64][2]``, the
    last block padded with zeros (a vocabulary of 50,000: 48 rows)."""
    padded = _padded(weight.detach())
    blocks, size = padded.shape[0] // BLOCK, padded.shape[1]
    return padded.reshape(blocks, BLOCK, size // 2, 2).permute(0, 2, 1, 3).contiguous()


class BlockedWeight:
    """``x @ weight.T + bias`` (then GELU, fc1's post-op) for bfloat16 rows by the kernel, over
    one blocked copy of ``weight`` (made here; the caller lets the original go)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        run = kernel()
        if run is None or not fits(weight):
            raise ValueError("the blocked kernel does not take this weight here")
        self.run = run
        self.features, self.size = weight.shape
        self.blocked = block(weight)
        self.bias = None if bias is None else _padded(bias.detach().to(torch.bfloat16)).contiguous()

    def __call__(self, x: torch.Tensor, activation: str = "none") -> torch.Tensor:
        """The product of bfloat16 ``x`` (``[..., size]``), then ``activation`` ("none" or
        "gelu"), bfloat16 ``[..., features]``."""
        if x.dtype != torch.bfloat16:
            raise TypeError(f"the blocked bfloat16 product takes bfloat16 rows, not {x.dtype}")
        rows = x.numel() // self.size
        out = torch.empty((*x.shape[:-1], self.features), dtype=torch.bfloat16)
        if rows == 0:
            return out
        x = x.detach().reshape(rows, self.size).contiguous()
        bias = self.bias.data_ptr() if self.bias is not None else 0
        with numba_kernels.LOCK:
            numba_kernels.match_threads()
            self.run(x.data_ptr(), rows, self.size, self.blocked.data_ptr(), bias,
                     activation == "gelu", out.data_ptr(), self.features)  # fmt: skip
        return out
