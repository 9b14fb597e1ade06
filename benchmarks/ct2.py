"""CTranslate2 beside our engine: convert the benchmark's checkpoint once and time its decoding.

CTranslate2 (``pip install 'galactica_ext[bench]'``) converts OPT checkpoints and is what
people pick for fast CPU inference of this architecture. Its converter leaves ``bos_token``,
``eos_token`` and ``unk_token`` unset in the converted ``config.json`` (GALACTICA's hub
tokenizer names none), and the generator then refuses the model: they are filled in here from
the tokenizer's special ids. The checkpoint is converted once in float32 (cached beside it);
``int8`` is CTranslate2's quantization at load (int8 weights, int8 activations).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from inprocess import Rate


def available() -> str | None:
    """None when CTranslate2 can be used here, else why not."""
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        return "ctranslate2 is not installed (pip install 'galactica_ext[bench]')"
    return None


def convert(checkpoint: Path, out: Path, tokenizer) -> Path:
    """The CTranslate2 (float32) conversion of ``checkpoint`` in ``out``, reused when ``out``
    already holds one of the same checkpoint."""
    marker = out / "galactica-ext-source.json"
    source = json.loads((checkpoint / "galactica-ext-shape.json").read_text())
    if marker.is_file() and json.loads(marker.read_text()) == source:
        return out
    from ctranslate2.converters import TransformersConverter

    TransformersConverter(str(checkpoint)).convert(str(out), force=True)
    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    names = tokenizer.convert_ids_to_tokens(
        [tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id]
    )
    config.update(dict(zip(("bos_token", "eos_token", "unk_token"), names, strict=True)))
    config_path.write_text(json.dumps(config, indent=2))
    marker.write_text(json.dumps(source))
    return out


def convert_apart(checkpoint: Path, out: Path) -> Path:
    """:func:`convert` in a process of its own: the converter holds the whole float32 model
    (5 GB at the 1.3b shape), which this process then never has to give back."""
    import subprocess
    import sys

    subprocess.run([sys.executable, __file__, str(checkpoint), str(out)], check=True)
    return out


class CT2:
    """A CTranslate2 generator on the CPU with ``threads`` threads, timed like our engine."""

    def __init__(self, path: Path, compute_type: str, threads: int, tokenizer) -> None:
        import ctranslate2

        self.compute_type = compute_type
        self.tokenizer = tokenizer
        self.generator = ctranslate2.Generator(
            str(path),
            device="cpu",
            compute_type=compute_type,
            intra_threads=threads,
            inter_threads=1,
        )

    def tokens(self, prompt_ids: list[int], n: int) -> tuple[list[int], list[float], float]:
        """Greedy: exactly ``n`` new token ids, their arrival times, and the start time."""
        pieces = self.tokenizer.convert_ids_to_tokens(list(prompt_ids))
        start = time.perf_counter()
        ids, stamps = [], []
        for step in self.generator.generate_tokens(
            pieces, max_length=n, min_length=n, sampling_topk=1
        ):
            stamps.append(time.perf_counter())
            ids.append(step.token_id)
        return ids, stamps, start

    def rate(self, prompt_ids: list[int], n: int) -> Rate:
        ids, stamps, start = self.tokens(prompt_ids, n)
        assert len(ids) == n, f"CTranslate2 made {len(ids)} tokens, not {n}"
        return Rate.from_stamps(start, stamps)

    def ttft(self, prompt_ids: list[int]) -> float:
        """Seconds to the first new token of a cold prompt."""
        _, stamps, start = self.tokens(prompt_ids, 1)
        return stamps[0] - start


if __name__ == "__main__":  # python ct2.py CHECKPOINT OUT: convert (see convert_apart)
    import sys

    from galactica_ext.engine.tokenizer import load_tokenizer

    # the engine's loader: the hub tokenizer leaves bos/eos/unk unset, which the converted
    # config needs (convert() failed with None ids on a machine without a cached conversion)
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    convert(source, target, load_tokenizer(str(source)))
