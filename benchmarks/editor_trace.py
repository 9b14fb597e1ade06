"""The editor workload: a person typing into a ~1,000-token document, or moving between two.

At each pause the editor sends the whole document so far as the prompt (stream, 16 tokens)
and hangs up as soon as the first token arrives (the ghost text is superseded by the next
keystrokes). Each prompt therefore extends the previous prompt of its document by a few
characters; with two documents, the prompts alternate between them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from sse import Server
from workloads import wait_for_quiet

_SUBJECTS = [
    "The attention mechanism",
    "Our estimator",
    "The protein backbone",
    "This lattice model",
    "The proposed catalyst",
    "A sparse transformer",
    "The Hamiltonian",
    "Gradient descent",
    "The reaction rate",
    "Each citation graph",
    "The posterior distribution",
    "The enzyme",
]
_VERBS = [
    "reduces",
    "predicts",
    "is bounded by",
    "converges to",
    "depends on",
    "correlates with",
    "generalises",
    "is invariant under",
    "dominates",
    "explains",
]
_OBJECTS = [
    "the variance of the gradient",
    "the free energy of the system",
    "a low-rank approximation",
    "the binding affinity",
    "the spectral gap",
    "the loss on held-out data",
    "the density of states",
    "the number of training tokens",
    "the melting temperature",
    "the eigenvalues of $H$",
    "the error term $O(n^{-1/2})$",
    "the activation energy",
]
_TAILS = [
    "as shown in Table 2",
    "in the limit $N \\to \\infty$",
    "for all $t > 0$",
    "under mild assumptions",
    "which we verify experimentally",
    "following [START_REF]",
    "see Section 4",
    "at room temperature",
    "with probability $1 - \\delta$",
]


def document(seed: int, chars: int = 9000) -> str:
    """A deterministic scientific-looking text of about ``chars`` characters."""
    rng = random.Random(seed)
    title = f"# {rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}\n\n"
    parts = [title, "## Abstract\n\n"]
    size = len(title)
    while size < chars:
        sentence = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
        if rng.random() < 0.5:
            sentence += f", {rng.choice(_TAILS)}"
        sentence += ". " if rng.random() < 0.85 else ".\n\n"
        parts.append(sentence)
        size += len(sentence)
    return "".join(parts)


def trace(
    tokenizer, seed: int, start_tokens: int = 1000, pauses: int = 20, documents: int = 1
) -> list[str]:
    """The prompts of one editing session: a document of ``start_tokens`` tokens, then grown by
    2-7 characters (what one types before a pause) at each later pause, ``pauses`` prompts in
    all. With ``documents`` > 1 the user moves between that many documents (of different seeds):
    pause k edits document k % documents, so the first ``documents`` pauses are cold."""
    texts, cuts, rngs = [], [], []
    for d in range(documents):
        text = document(seed + 1000 * d)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert len(ids) > start_tokens + 100, "the generated document is too short"
        texts.append(text)
        cuts.append(len(tokenizer.decode(ids[:start_tokens])))
        rngs.append(random.Random(seed + 1000 * d + 1))
    prompts = []
    for pause in range(pauses):
        d = pause % documents
        if pause >= documents:  # a document seen before: typed into since
            cuts[d] += rngs[d].randint(2, 7)
        prompts.append(texts[d][: cuts[d]])
    return prompts


@dataclass
class TraceResult:
    label: str
    cold: list[float] = field(default_factory=list)  # seconds: first pause of each trace
    warm: list[float] = field(default_factory=list)  # seconds: every later pause


def run_traces(
    servers: dict[str, Server],
    prompts_per_trace: list[list[str]],
    gap: float = 0.3,
    extra: dict | None = None,
    cold: int = 1,
) -> dict[str, TraceResult]:
    """Replay each trace on every server, pause by pause, the servers' order rotating, so the
    machine's background load hits them alike. ``gap``: idle time before each request (the
    keystrokes since the last; a server finishes cancelling meanwhile), then until the machine
    is quiet (workloads.wait_for_quiet). ``cold``: how many pauses of
    each trace open a document not seen before (``documents`` of :func:`trace`)."""
    results = {label: TraceResult(label) for label in servers}
    labels = list(servers)
    turn = 0
    for prompts in prompts_per_trace:
        for pause, prompt in enumerate(prompts):
            order = labels[turn % len(labels) :] + labels[: turn % len(labels)]
            turn += 1
            for label in order:
                wait_for_quiet(gap)  # the last request's server (or section) done
                body = {
                    "prompt": prompt,
                    "max_tokens": 16,
                    "temperature": 0,
                    "ignore_eos": True,
                    "skip_special_tokens": False,
                    **(extra or {}),
                }
                r = servers[label].complete(body, close_after_first=True)
                (results[label].warm if pause >= cold else results[label].cold).append(r.ttft)
    return results
