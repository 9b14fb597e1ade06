"""How fast the citation library reads, caches, shortlists and grounds (no model, no torch).

Writes a generated BibTeX file of ``--entries`` entries (10,000 by default) shaped like real
exports: LaTeX accents in a third of the names, ``{{Protected}}`` words in a fifth of the
titles, a macro or math in one title in twenty, abstracts in a third; then times:

- the first read (bibtexparser v2 + LaTeX decoding + CSL mapping), and a cached re-read;
- building the fuzzy matcher and matching one suggestion;
- the BM25 index and one shortlist query;
- the grounded cite request at 200, 2,000 and 10,000 entries.

Run: ``python benchmarks/library_parse.py [--entries 10000] [--repeat 3]``. Prints the CPU
model and the load average; times are this process's CPU time (single-threaded work, so on a
quiet machine the wall time is the same), with the wall time of the parse beside it.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

from galactica_ext.library import Library, LibraryStore, Matcher, grounded_cite
from galactica_ext.library.bm25 import BM25

_WORDS_TEXT = """
protein folding graph neural network transformer attention quantum catalysis galaxy
cluster entropy diffusion model bayesian inference sparse coding brain imaging gene
expression climate ocean circulation lattice gauge theory spectroscopy crystal
structure reinforcement learning molecular dynamics superconductivity topology
"""
WORDS = _WORDS_TEXT.split()
SURNAMES = ["Smith", "M{\\\"u}ller", "Garc{\\'\\i}a", "Nguyen", "Schr{\\\"o}dinger", "Kim",
            "Ivanov", "{\\O}stergaard", "Dupont", "Wang", "Ko{\\v{c}}i", "Rossi"]  # fmt: skip


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def generate(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = rng.sample(WORDS, rng.randint(4, 10))
        if rng.random() < 0.2:
            words[0] = "{{" + words[0].upper() + "}}"
        if rng.random() < 0.05:
            words.append(rng.choice(["\\emph{in vivo}", "$\\alpha$-helices"]))
        title = " ".join(words).capitalize()
        authors = " and ".join(
            f"{rng.choice(SURNAMES) if rng.random() < 0.33 else rng.choice(WORDS).title()}, "
            f"{rng.choice('ABCDEFGH')}."
            for _ in range(rng.randint(1, 6))
        )
        fields = [
            f"  title = {{{title}}}",
            f"  author = {{{authors}}}",
            f"  journal = {{Journal of {rng.choice(WORDS).title()}}}",
            f"  year = {{{rng.randint(1950, 2025)}}}",
            f"  volume = {{{rng.randint(1, 300)}}}",
            f"  pages = {{{rng.randint(1, 900)}--{rng.randint(901, 999)}}}",
            f"  doi = {{10.{rng.randint(1000, 9999)}/x{i}}}",
        ]
        if rng.random() < 0.33:
            fields.append("  abstract = {" + " ".join(rng.choices(WORDS, k=120)) + "}")
        out.append(f"@article{{key{i},\n" + ",\n".join(fields) + "\n}\n")
    return "\n".join(out)


def timed(fn, repeat: int) -> tuple[float, object]:
    """Median CPU seconds of ``fn`` (this process's CPU time: the machine may be shared, and
    the work is single-threaded, so CPU time is what a quiet machine's wall time would be)."""
    times, result = [], None
    for _ in range(repeat):
        start = time.process_time()
        result = fn()
        times.append(time.process_time() - start)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.bib"
        path.write_text(generate(args.entries), encoding="utf-8")
        size = path.stat().st_size

        def cold() -> Library:
            return LibraryStore().read(path)

        wall = time.perf_counter()
        seconds, library = timed(cold, args.repeat)
        wall = (time.perf_counter() - wall) / args.repeat
        assert isinstance(library, Library) and len(library) == args.entries, library.problems
        print(f"parse {args.entries:,} entries ({size / 1e6:.1f} MB): {seconds:.2f} s CPU "
              f"({seconds / args.entries * 1e6:.0f} µs/entry; wall {wall:.2f} s here)")  # fmt: skip
        store = LibraryStore()
        store.read(path)
        seconds, _ = timed(lambda: store.read(path), args.repeat)
        print(f"cached re-read (mtime unchanged): {seconds * 1e3:.1f} ms")
        seconds, matcher = timed(lambda: Matcher(library), args.repeat)
        print(f"fuzzy matcher built: {seconds:.2f} s")
        entry = library.entries[args.entries // 2]
        seconds, found = timed(lambda: matcher.match(entry.title.lower(), entry.author), 5)
        assert found is not None and found.entry.key == entry.key
        print(f"one suggestion matched: {seconds * 1e3:.1f} ms")
        seconds, index = timed(lambda: BM25(library.entries), args.repeat)
        print(f"BM25 index: {seconds:.2f} s")
        text = "We study " + " ".join(WORDS[:40]) * 5
        seconds, _ = timed(lambda: index.top(text, 2000), 5)
        print(f"BM25 shortlist of 2,000 for a 2,000-character text: {seconds * 1e3:.1f} ms")
        for size_ in (200, 2000, 10_000):
            if size_ > args.entries:
                break
            part = Library(library.entries[:size_])
            seconds, grounding = timed(lambda p=part: grounded_cite(text, p, n=3), args.repeat)
            print(f"grounded cite request, {size_:,} entries: {seconds * 1e3:.1f} ms "
                  f"({len(grounding.request.choices):,} choices offered)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
