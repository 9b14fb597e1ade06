"""Keep torch's thread count at whatever is measured fastest while the engine runs.

A thread count measured once at load goes stale: the machine that was busy loading four
models is idle a minute later, and a laptop that was idle starts a compile. Measured on a
2-core AMD EPYC, galactica-125m in bfloat16: idle, 2 threads decode at 113 tokens/s over HTTP
and prefill 1,000 tokens in 0.39 s, against 76 tokens/s and 0.81 s with 1 thread; while
other processes keep the cores busy, a 2-thread decoding step took 1.1 s against 0.06 s
(every step waits for the thread that was descheduled). So the engine times its own forwards
and now and then tries another count in a short trial, interleaved with the current one:

- two kinds of work are tuned apart: **steps** (a token or a few per sequence: bound by
  memory bandwidth) and **prompts** (:data:`PROMPT_TOKENS` tokens or more: bound by compute);
- a trial compares forwards of the same shape only (rows and tokens), medians of
  :data:`ROUNDS` each, the current count and the other one alternating; long prompts
  (:data:`TRIAL_TOKENS`) are never tried with another count: shorter prompts decide for them,
  and so do steps (when steps take more threads, prompts take them too: a machine whose
  steps are faster with more threads has idle cores);
- a prompt whose threads did not get their cores (:func:`cpu_share` below
  :func:`crowded_below`: measured on 2 cores, 0.96-1.01 idle, 0.61-0.75 beside one busy
  process) drops prompts to the next fewer count at once, and a later prompt tries the
  count again (backing off like a trial); the engine runs long prompts in chunks so that
  this happens partway through one (engine/scheduler.py);
- more threads are taken only when at least :data:`MARGIN` faster, fewer when not slower
  (fewer threads leave the cores to the HTTP loop, the browser and everything else);
- between trials, steps far slower than the fastest of their shape with the same count
  (:data:`FALL_BACK`, twice in a row) drop steps and prompts to one thread at once: with a
  thread on every core, one other busy process makes every barrier wait for a descheduled
  thread (measured: a 20-token forward of galactica-125m took 300-600 ms with 2 threads
  beside one busy process, 15 ms with 1), and that must not last until the next trial
  (prompts keep their own count: the client streaming a reply keeps a core busy while
  steps run, and is idle while it waits for a prompt's first token);
- a trial ends at once when the other count is far slower (:data:`GIVE_UP`), and trials
  that change nothing come less and less often (:data:`EVERY_SECONDS` doubling to
  :data:`MAX_BACKOFF` times), so a wrong guess costs a few steps now and then.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TypeVar

import torch

from .threads import MARGIN  # more threads must be this much faster, as at load

log = logging.getLogger(__name__)

T = TypeVar("T")

#: a forward of at least this many new tokens (rows x tokens) is a prompt, else a step
PROMPT_TOKENS = 32
#: forwards of each count in a trial
ROUNDS = 3
#: a trial's other count this many times slower than the current one ends it at once
GIVE_UP = 2.0
#: steps this many times slower than the fastest seen of their shape and count, this many
#: in a row, fall back
FALL_BACK = 3.0
FALL_BACK_STEPS = 2
#: seconds between trials while the choice keeps changing ...
EVERY_SECONDS = 2.0
#: ... and at most this many times as long while it does not
MAX_BACKOFF = 16
#: a prompt this long (rows x tokens) never starts a trial: the other count could cost the
#: user a long wait (a 1,000-token galactica-125m prompt: 0.4 s more); shorter prompts
#: decide for all
TRIAL_TOKENS = 256
#: trials of the same kind and shape that never happen (its shape changes first) give up
#: after this many forwards
TRIAL_PATIENCE = 64
#: a prompt forward's threads together got less than ``1 - CROWDED / threads`` of their
#: cores (2 threads: 0.85): another process runs on ours (see :func:`crowded_below`)
CROWDED = 0.3


def crowded_below(threads: int) -> float:
    """The CPU share (:func:`cpu_share`) under which ``threads`` threads were crowded out: one
    of them descheduled for part of the forward lowers the share by a part of
    ``1 / threads``, so the line rises with the count."""
    return 1 - CROWDED / threads


def cpu_share(cpu_seconds: float, wall_seconds: float, threads: int) -> float:
    """The process's CPU time over what ``threads`` busy threads would have had: about 1 when
    every thread had a core (OpenMP's waiting threads spin, so they count), less when the
    operating system gave their cores to another process meanwhile."""
    return cpu_seconds / max(wall_seconds * threads, 1e-9)


def work_kind(rows: int, tokens: int) -> tuple[str, Hashable]:
    """The kind of a forward of ``rows`` x ``tokens`` new tokens, and the shape a trial
    compares like with like by (prompts by their size rounded to a power of two)."""
    if rows * tokens >= PROMPT_TOKENS:
        return "prompt", (rows * tokens).bit_length()
    return "step", (rows, tokens)


@dataclass
class Trial:
    """A comparison in progress: the counts still to run, and the seconds seen for each."""

    key: Hashable
    current: int
    other: int
    plan: list[int]
    seen: dict[int, list[float]] = field(default_factory=dict)
    waited: int = 0  # forwards of another shape since the trial began


@dataclass
class KindState:
    chosen: int
    next_trial: float = 0.0
    backoff: int = 1
    slow: int = 0  # far slower steps in a row with the chosen count (see FALL_BACK)
    crowded_from: int | None = None  # prompts: the count left when crowded out, tried again
    turn: int = 0  # which other count the next trial tries
    trial: Trial | None = None


class ThreadTuner:
    """Chooses torch's thread count for each forward of the engine from ``choices``, starting
    from ``initial`` (per kind; :func:`work_kind`). ``clock`` schedules the trials."""

    def __init__(
        self,
        choices: list[int],
        initial: dict[str, int] | None = None,
        *,
        every: float = EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.choices = sorted(set(choices))
        first = self.choices[0]
        self.every = every
        self.clock = clock
        now = clock()
        self.kinds = {
            kind: KindState(chosen=(initial or {}).get(kind, first), next_trial=now + every)
            for kind in ("step", "prompt")
        }
        self.current: int | None = None  # what torch is set to in the calling thread
        self.switches = 0  # changes of a kind's choice (not of trial forwards)
        self.fallbacks = 0  # of which: drops to one thread after a far slower forward
        #: the fastest forward seen of each (kind, shape, count)
        self.fastest: dict[tuple[str, Hashable, int], float] = {}

    @property
    def adaptive(self) -> bool:
        return len(self.choices) > 1

    def describe(self) -> dict[str, int]:
        """The count chosen for each kind of work now."""
        return {kind: state.chosen for kind, state in self.kinds.items()}

    def run(self, rows: int, tokens: int, forward: Callable[[], T]) -> T:
        """Run ``forward`` (``rows`` x ``tokens`` new tokens) with the count chosen for it,
        timing it for the trials."""
        kind, key = work_kind(rows, tokens)
        threads = self.pick(kind, key)
        if threads != self.current:
            torch.set_num_threads(threads)
            self.current = threads
        if not self.adaptive:
            return forward()
        start, cpu = time.perf_counter(), time.process_time()
        result = forward()
        seconds = time.perf_counter() - start
        share = cpu_share(time.process_time() - cpu, seconds, threads)
        self.record(kind, key, threads, seconds, share)
        return result

    def prompts_may_fall_back(self) -> bool:
        """Whether the next prompt forward could run with more than the fewest threads (so
        that a long prompt is worth running in chunks: a crowded chunk drops the rest)."""
        state = self.kinds["prompt"]
        if not self.adaptive:
            return False
        if state.crowded_from is not None:  # crowded out: until it is tried again
            return self.clock() >= state.next_trial
        return state.chosen > self.choices[0]

    def pick(self, kind: str, key: Hashable) -> int:
        """The count for the next forward of this kind and shape."""
        state = self.kinds[kind]
        if state.crowded_from is not None:  # no trials until the crowded count is back
            return state.crowded_from if self.clock() >= state.next_trial else state.chosen
        trial = state.trial
        if trial is not None and trial.key != key:
            trial.waited += 1
            if trial.waited > TRIAL_PATIENCE:  # this shape is not coming back soon
                self._end(state, switched=False)
            return state.chosen
        if (
            trial is None
            and self.adaptive
            and not (kind == "prompt" and 1 << (key - 1) >= TRIAL_TOKENS)  # type: ignore[operator]
            and self.clock() >= state.next_trial
        ):
            others = [n for n in self.choices if n != state.chosen]
            other = others[state.turn % len(others)]
            state.turn += 1
            plan = [state.chosen, other] * ROUNDS  # the current count first: a yardstick
            trial = state.trial = Trial(key, state.chosen, other, plan)
        return trial.plan[0] if trial is not None else state.chosen

    def record(
        self, kind: str, key: Hashable, threads: int, seconds: float, share: float = 1.0
    ) -> None:
        """A forward of this kind and shape took ``seconds`` with ``threads`` threads, whose
        CPU share was ``share`` (:func:`cpu_share`; it counts for prompts)."""
        state = self.kinds[kind]
        seen = (kind, key, threads)
        fastest = self.fastest.get(seen)
        self.fastest[seen] = seconds if fastest is None else min(fastest, seconds)
        if kind == "prompt" and self._crowding(state, threads, share):
            return
        if kind == "step" and threads == state.chosen > self.choices[0]:
            # a step's time hardly varies within its shape (a prompt's does): two far slower
            # in a row are another process on our cores, not a passing hiccup
            far = fastest is not None and seconds > FALL_BACK * fastest
            state.slow = state.slow + 1 if far else 0
            if state.slow >= FALL_BACK_STEPS:
                state.slow = 0
                self._fall_back(kind, state, seconds, fastest)  # ends any trial too
                return
        trial = state.trial
        if trial is None or trial.key != key or not trial.plan or trial.plan[0] != threads:
            return
        trial.plan.pop(0)
        trial.seen.setdefault(threads, []).append(seconds)
        if threads == trial.other and seconds > GIVE_UP * min(trial.seen[trial.current]):
            self._end(state, switched=False)  # far slower: no need to see it again
            return
        if not trial.plan:
            self._decide(kind, state, trial)

    def _crowding(self, state: KindState, threads: int, share: float) -> bool:
        """Prompts: drop to the next fewer count when a forward's threads were crowded out,
        take the count back when one tried again was not (True: either happened)."""
        if threads > self.choices[0] and share < crowded_below(threads):
            fewer = max(n for n in self.choices if n < threads)
            log.info(
                "threads for prompts: %d -> %d at once (their CPU share was %.2f)",
                threads,
                fewer,
                share,
            )
            state.crowded_from = max(threads, state.crowded_from or 0)
            self._switch("prompt", state, min(fewer, state.chosen))
            self.fallbacks += 1
            self._end(state, switched=False)  # tried again later, less and less often
            return True
        if state.crowded_from == threads and threads != state.chosen:
            log.info("threads for prompts: %d -> %d (cores free again)", state.chosen, threads)
            state.crowded_from = None
            self._switch("prompt", state, threads)
            self._end(state, switched=True)
            return True
        return False

    def _fall_back(self, kind: str, state: KindState, seconds: float, fastest: float) -> None:
        fewest = self.choices[0]
        log.info(
            "threads for %ss: %d -> %d at once (a forward took %.1f ms, %.1f ms at best)",
            kind,
            state.chosen,
            fewest,
            1000 * seconds,
            1000 * fastest,
        )
        self._switch(kind, state, fewest)
        self.fallbacks += 1
        self._end(state, switched=False)  # the next trial (backing off) tries more again

    def _switch(self, kind: str, state: KindState, threads: int) -> None:
        """Choose ``threads`` for this kind; prompts follow steps that take more threads
        (idle cores; long prompts are never tried with another count themselves)."""
        state.chosen = threads
        self.switches += 1
        prompts = self.kinds["prompt"]
        if kind == "step" and threads > prompts.chosen and prompts.crowded_from is None:
            prompts.chosen = threads

    def _decide(self, kind: str, state: KindState, trial: Trial) -> None:
        now = statistics.median(trial.seen[trial.current])
        other = statistics.median(trial.seen[trial.other])
        # more threads when clearly faster, fewer when not slower
        more = trial.other > trial.current
        better = other < (1 - MARGIN) * now if more else other <= now
        if better:
            log.info(
                "threads for %ss: %d -> %d (%.2f -> %.2f ms)",
                kind,
                trial.current,
                trial.other,
                1000 * now,
                1000 * other,
            )
            self._switch(kind, state, trial.other)
        self._end(state, switched=better)

    def _end(self, state: KindState, switched: bool) -> None:
        state.trial = None
        state.backoff = 1 if switched else min(2 * state.backoff, MAX_BACKOFF)
        state.next_trial = self.clock() + self.every * state.backoff
