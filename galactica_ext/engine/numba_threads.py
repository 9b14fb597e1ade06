"""What the engine's numba kernels share: one process-wide turn, and torch's thread count."""

from __future__ import annotations

import threading

import torch

# numba's fallback threading layer ("workqueue") aborts the process when two threads launch
# parallel kernels at once; engines in one process (tests, benchmarks) take turns here
LOCK = threading.Lock()


def match_threads() -> None:
    """Run numba's kernels on as many threads as torch's products (the engine tunes that
    count). Call it holding :data:`LOCK`."""
    import numba

    threads = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != threads:
        numba.set_num_threads(threads)
