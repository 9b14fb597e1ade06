"""One OpenMP runtime for torch and numba in the agent's process.

torch's Linux wheels bring their own copy of GNU OpenMP (``torch/lib/libgomp.so.1``), and
numba's OpenMP threading layer links against the system's (``libgomp.so.1.0.0``). Loaded
both, a process has two runtimes with a thread pool each, and each pool's idle threads spin
for a few milliseconds after every parallel region: after each of torch's weight products its
spinning thread holds a core that numba's next kernel (the decoding attention, the few-row
products) wants, and the other way round. Measured on a 2-core AMD EPYC, galactica-125m in
bfloat16, the agent decoding 128 tokens over HTTP, eight requests each, two agents in turn:
80-88 tokens/s with two runtimes, 96-112 with one (median gap between tokens 10.9-14.3 ms
against 8.6-12.4 ms).

:func:`share_one_runtime` loads the system's runtime before torch is imported, so that torch
binds to it too (the dynamic loader takes an already loaded ``libgomp.so.1`` for torch's), and
numba's layer, which links against the same file, shares it. torch needs only the oldest
OpenMP symbols (GOMP_1.0, GOMP_4.0, OMP_1.0: GCC 4.9 and later), which numba's layer needs
as well. It must run before anything imports torch: the agent's entry points call it first.
Where torch is already imported, there is no system runtime, the platform is not Linux, or
``$GALACTICA_OPENMP=bundled``, it does nothing and says why.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: ``$GALACTICA_OPENMP``: "shared" (the default: one runtime) or "bundled" (torch's own)
OPENMP_ENV = "GALACTICA_OPENMP"
CHOICES = ("shared", "bundled")

#: the system's GNU OpenMP, as numba's threading layer finds it
SYSTEM_RUNTIME = "libgomp.so.1"

#: what the last call of share_one_runtime did, for the agent's log
state = "not tried"


def share_one_runtime() -> str:
    """Load the system's OpenMP runtime for torch and numba to share (see the module), unless
    it cannot help here; returns (and keeps in :data:`state`) what happened, in words. A bad
    ``$GALACTICA_OPENMP`` raises ValueError."""
    global state
    choice = os.environ.get(OPENMP_ENV, "").strip() or "shared"
    if choice not in CHOICES:
        raise ValueError(f"${OPENMP_ENV}={choice!r}: expected one of {', '.join(CHOICES)}")
    if choice == "bundled":
        state = f"torch's own OpenMP (${OPENMP_ENV}=bundled)"
    elif not sys.platform.startswith("linux"):
        state = "torch's own OpenMP (not Linux)"
    elif "torch" in sys.modules:
        state = "torch's own OpenMP (torch was imported first)"
    else:
        try:
            ctypes.CDLL(SYSTEM_RUNTIME, mode=os.RTLD_GLOBAL)
        except OSError as err:
            state = f"torch's own OpenMP (no system runtime: {err})"
        else:
            state = f"one OpenMP runtime for torch and numba (the system's {SYSTEM_RUNTIME})"
    return state


def loaded_runtimes(pid: int | str = "self") -> list[str]:
    """The OpenMP runtime files mapped into process ``pid`` (this one by default; Linux, empty
    elsewhere)."""
    try:
        with open(f"/proc/{pid}/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libgomp" in line}
    except OSError:
        return []
    return sorted(paths)
