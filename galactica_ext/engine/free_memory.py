"""Give the memory a model load freed back to the system.

Loading reads each layer's weights and turns them into what the engine keeps (packed, int8,
fused), freeing the intermediates; glibc's allocator keeps freed memory for reuse, in the
arenas of the thread that freed it. The agent loads on a thread of its own, so that memory
stayed resident: a galactica-1.3b int8 agent held 3.4 GB once ready against 2.1 GB for the
same load on the main thread (``benchmarks/run.py --shape 1.3b``, section 5). ``malloc_trim``
returns the free pages of every arena.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, looked up once (``find_library`` runs ``ldconfig``), or None."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    if trim is None:
        log.debug("no malloc_trim in the C library (%s): freed memory stays with it", name)
        return None
    trim.argtypes = [ctypes.c_size_t]
    return trim


def release_free_memory() -> bool:
    """Return the allocator's free pages to the system (glibc's ``malloc_trim(0)``); whether
    it could (False where the C library has no ``malloc_trim``: musl, macOS, Windows)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
