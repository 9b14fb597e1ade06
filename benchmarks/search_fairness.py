"""A short request beside a long beam search: its time alone and during the search.

Usage: python benchmarks/search_fairness.py CHECKPOINT [DTYPE] [--no-share]

CHECKPOINT: a local checkpoint (e.g. one built with
``galactica_ext.checkpoints.build_random_checkpoint(path, "125m")``). ``--no-share`` steps
the search after every batch step (plain 1:1 interleaving) instead of the engine's time share.
Issue 8.6: a 4-token request took 12.5 s behind a 16-beam, 800-token search (0.04 s alone).
"""

from __future__ import annotations

import sys
import threading
import time

import torch

from galactica_ext.engine import GalacticaModel, SamplingParams


def main() -> None:
    path = sys.argv[1]
    dtype = sys.argv[2] if len(sys.argv) > 2 and not sys.argv[2].startswith("--") else "bfloat16"
    model = GalacticaModel.load(path, dtype=dtype, device="cpu")
    engine = model.engine
    short = SamplingParams(max_tokens=4, ignore_eos=True)
    engine.generate("warm up", short)
    start = time.perf_counter()
    engine.generate("Quick one", short)
    alone = time.perf_counter() - start
    prompt = "A long citation search [START_REF]"
    prompt_len = len(engine.encode(prompt))
    reached = threading.Event()

    def progress(batch_id: int, ids: torch.Tensor) -> list[int]:
        if len(ids) - prompt_len >= 100:
            reached.set()
        return []

    search = engine.submit(
        prompt,
        SamplingParams(
            max_tokens=800, min_tokens=800, ignore_eos=True, prefix_allowed_tokens_fn=progress
        ),
        n=16,
        num_beams=16,
    )
    reached.wait()
    if "--no-share" in sys.argv:
        step = engine._searches.step
        engine._searches.step = lambda spent, busy: step(spent, False)  # type: ignore[method-assign]
    start = time.perf_counter()
    engine.generate("Quick one", short)
    during = time.perf_counter() - start
    print(
        f"4-token request alone {alone * 1000:.1f} ms, beside a 16-beam search at 100 tokens "
        f"{during * 1000:.1f} ms: {during / alone:.1f}x"
    )
    search.cancel()
    search.wait()
    model.close()


if __name__ == "__main__":
    main()
