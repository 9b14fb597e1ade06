"""Memory freed on a thread of its own goes back to the system once the load is over."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from galactica_ext.engine.free_memory import release_free_memory

#: on a thread (as the agent loads), 64 kB blocks, every other one freed: holes that glibc
#: keeps in the thread's arena until it is told to trim; RssAnon in kB before and after
PROGRAM = textwrap.dedent(
    """
    import threading
    from galactica_ext.engine.free_memory import release_free_memory

    def anon():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1])

    kept = []
    def load():
        blocks = [bytearray(64 * 1024) for _ in range(4096)]  # 256 MiB, written
        kept.extend(blocks[::2])
        del blocks

    worker = threading.Thread(target=load)
    worker.start()
    worker.join()
    before = anon()
    released = release_free_memory()
    print(released, before, anon())
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RssAnon is Linux's")
def test_freed_memory_goes_back_to_the_system() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True
    ).stdout.split()
    released, before, after = out[0] == "True", int(out[1]), int(out[2])
    if not released:
        pytest.skip("this C library has no malloc_trim")
    assert before - after > 96 * 1024, (before, after)  # of the 128 MiB freed


def test_release_free_memory_answers_whether_it_could() -> None:
    assert release_free_memory() in (True, False)
