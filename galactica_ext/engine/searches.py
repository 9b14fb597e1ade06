"""The running searches (beam, group beam, contrastive) and how they share the worker with
the continuous batch.

Every loop iteration sees each search's cancellation. While the continuous batch has work,
the searches together get about as much of the worker's time as the batch's own steps
(a credit of the batch's time, spent by search steps in turn), so a short request runs at
about half its speed beside a long search however costly a search step is (a 16-beam step
over 800 tokens costs many plain steps); with the batch idle, every search steps every time.
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
        self.steps = 0
        self._credit = 0.0  # seconds of worker time the searches may still take
        self._turn = 0

    def __len__(self) -> int:
        return len(self.running)

    def add(self, search: Search) -> None:
        self.running.append(search)

    def step(self, batch_time: float, batch_busy: bool) -> None:
        """One iteration: cancelled searches finish; then steps, as the credit allows."""
        for search in list(self.running):
            if search.completion.cancelled.is_set():
                self._run(search, cancel=True)
        if not self.running:
            self._credit = 0.0
            return
        order = self.running[self._turn % len(self.running) :]
        order += self.running[: self._turn % len(self.running)]
        self._turn += 1
        if not batch_busy:
            for search in order:
                self._run(search)
            self._credit = 0.0
            return
        self._credit += batch_time
        for search in order:
            if self._credit <= 0:
                break
            start = time.perf_counter()
            self._run(search)
            self._credit -= time.perf_counter() - start
        self._credit = min(self._credit, 0.0)  # no saving up: only debt carries over

    def _run(self, search: Search, cancel: bool = False) -> None:
        try:
            if cancel:
                search.finish_cancelled()
                done = True
            else:
                done = search.step()
                self.steps += 1
        except Exception as err:
            log.warning("a search failed: %s", err)
            search.completion.fail(err)
            done = True
        if done:
            self.running.remove(search)
