"""What the engine's numba kernels share: a switch in the environment, compiling at load with
a fallback, one process-wide turn, and torch's thread count."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from functools import lru_cache

import torch

log = logging.getLogger(__name__)

#: the kernels' fastmath flags: float32 reassociation (vectorized sums) but IEEE infinities
#: and NaN (NaN in a weight or the cache must reach the logits, where the engine reports it)
FAST = {"reassoc", "contract", "arcp", "nsz"}

#: what each kernel's environment variable takes: the kernel where numba works, or not at all
CHOICES = ("auto", "torch")

# numba's fallback threading layer ("workqueue") aborts the process when two threads launch
# parallel kernels at once; engines in one process (tests, benchmarks) take turns here
LOCK = threading.Lock()


def wanted(env: str, choices: tuple[str, ...] = CHOICES) -> str:
    """The choice in ``$env`` ("auto" when unset); ValueError if it is not one of ``choices``."""
    choice = os.environ.get(env, "").strip() or "auto"
    if choice not in choices:
        raise ValueError(f"${env}={choice!r}: expected one of {', '.join(choices)}")
    return choice


def load(env: str, what: str, otherwise: str, build: Callable[[], Callable]) -> Callable | None:
    """The kernel ``build`` returns (it imports the kernel and runs it once on tiny inputs, so
    numba compiles it, or loads it from its disk cache, now), or None where ``$env`` says
    "torch" or the kernel cannot run here; the log says which, and that ``otherwise`` runs
    instead. A bad ``$env`` raises ValueError."""
    if wanted(env) == "torch":
        log.info("%s: %s (%s=torch)", what, otherwise, env)
        return None
    try:
        return build()
    except Exception as err:  # numba missing, or unable to compile in this environment
        log.info("%s: %s (the numba kernel cannot run here: %s)", what, otherwise, err)
        return None


def loader(
    env: str, what: str, otherwise: str, build: Callable[[], Callable]
) -> Callable[[], Callable | None]:
    """A ``kernel()`` for a module: :func:`load`'s result, cached (``kernel.cache_clear()``
    makes the next call look at ``$env`` again; ``kernel.env`` names the switch)."""

    @lru_cache(maxsize=1)
    def kernel() -> Callable | None:
        return load(env, what, otherwise, build)

    kernel.__doc__ = (
        f"The numba kernel for {what}, compiled (or loaded from numba's cache) by a first tiny "
        f"run, or None where it cannot run here or ${env}=torch (the reason logged once; "
        f"{otherwise} runs instead). The engine asks at model load. A bad ${env} raises "
        "ValueError."
    )
    kernel.env = env  # type: ignore[attr-defined]
    return kernel


#: per thread (numba's thread count is the calling thread's): the torch count last matched
_matched = threading.local()


def match_threads() -> None:
    """Run numba's kernels on as many threads as torch's products (the engine tunes that
    count). Call it holding :data:`LOCK`. Cheap when the count has not changed since this
    thread's last call (it runs before every kernel call)."""
    wanted = torch.get_num_threads()
    if getattr(_matched, "threads", None) == wanted:
        return
    import numba

    threads = max(1, min(wanted, numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != threads:
        numba.set_num_threads(threads)
    _matched.threads = wanted


@lru_cache(maxsize=1)
def emits_avx512() -> bool:
    """Whether numba compiles for AVX-512 here: the features it hands LLVM (the host's, or
    ``$NUMBA_CPU_FEATURES``). Call it only where numba imports."""
    from numba.core.registry import cpu_target

    features = cpu_target.target_context.codegen()._get_host_cpu_features()
    return "+avx512f" in features.split(",")
