"""The running searches (beam, group beam, contrastive) and how they share the worker with
the continuous batch.

Every loop iteration sees each search's cancellation. While the continuous batch has work,
the searches together get about as much of the worker's time as the batch's own steps: the
batch's time is credited to the searches, and a search steps only once the credit covers
what its last step cost. A search step can cost many plain steps (16 beams over a long
citation), so a short request then runs several steps between two search steps instead of
waiting for one after each of its own. With the batch idle, every search steps every time.
"""

from __future__ import annotations

import logging
import time

from .requests import Search

log = logging.getLogger(__name__)


class Searches:
    """The searches in progress, stepped fairly beside the continuous batch."""

    def __init__(self) -> None:
        self.running: list[Search] = []
        self._credit = 0.0  # seconds of worker time the searches may still take
        self._turn = 0
        self._cost: dict[int, float] = {}  # what each search's last step took (s)

    def __len__(self) -> int:
        return len(self.running)

    def add(self, search: Search) -> None:
        self.running.append(search)

    def step(self, batch_time: float, batch_busy: bool) -> None:
        """One iteration: cancelled searches finish; then steps, as the credit allows."""
        for search in list(self.running):
            if search.completion.cancelled.is_set():
                self._run(search, cancel=True)
        self._cost = {k: v for k, v in self._cost.items() if k in {id(s) for s in self.running}}
        if not self.running:
            self._credit = 0.0
            return
        first = self._turn % len(self.running)
        order = self.running[first:] + self.running[:first]
        if not batch_busy:
            for search in order:
                self._timed(search)
            self._credit = 0.0
            return
        self._credit += batch_time
        for search in order:  # in turn: a search that cannot afford its step yet waits,
            cost = self._cost.get(id(search), 0.0)  # and the ones after it wait behind it
            if self._credit <= 0 or self._credit < cost:
                break
            self._credit -= self._timed(search)
            self._turn += 1
        # no saving up beyond the dearest step: only that, or a debt, carries over
        self._credit = min(self._credit, max(self._cost.values(), default=0.0))

    def _timed(self, search: Search) -> float:
        start = time.perf_counter()
        self._run(search)
        took = time.perf_counter() - start
        if search in self.running:
            self._cost[id(search)] = took
        return took

    def _run(self, search: Search, cancel: bool = False) -> None:
        try:
            if cancel:
                search.finish_cancelled()
                done = True
            else:
                done = search.step()
        except Exception as err:
            log.warning("a search failed: %s", err)
            search.completion.fail(err)
            done = True
        if done:
            self.running.remove(search)
            self._cost.pop(id(search), None)
