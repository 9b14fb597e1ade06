"""What a submitted request streams back: deltas, finished choices, or one failure."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

from .sampling import Choice


@dataclass
class Delta:
    """New text for choice ``index`` (possibly empty while a stop string is undecided)."""

    index: int
    text: str
    token_ids: list[int]
    logprobs: list[Choice] = field(default_factory=list)


@dataclass
class ChoiceResult:
    """One finished choice: its text (stop string excluded) and why it ended."""

    index: int
    text: str
    finish_reason: str  # "stop", "length" or "cancelled"
    token_ids: list[int]
    prompt_tokens: int
    truncated: bool
    logprobs: list[Choice] = field(default_factory=list)
    reused_tokens: int = 0


@dataclass
class Finished:
    result: ChoiceResult


@dataclass
class Failed:
    """The request failed (only this request: the engine goes on serving the others)."""

    error: BaseException

    @property
    def message(self) -> str:
        return str(self.error)


Event = Delta | Finished | Failed


class EngineClosed(RuntimeError):
    """The engine was closed (the model unloaded) while the request waited or ran."""


class Completion:
    """A submitted request: iterate it (sync or async) for events, or cancel it.

    After a ``Failed`` event nothing more is delivered; ``done`` is set once every choice has
    finished or the request failed.
    """

    def __init__(self, n: int, loop: asyncio.AbstractEventLoop | None) -> None:
        self.n = n
        self.cancelled = threading.Event()
        self.done = threading.Event()
        self.failed: BaseException | None = None
        self.results: list[ChoiceResult | None] = [None] * n
        self._loop = loop
        self._sync: queue.SimpleQueue[Event] | None = None if loop else queue.SimpleQueue()
        self._async: asyncio.Queue[Event] | None = asyncio.Queue() if loop else None

    def cancel(self) -> None:
        """Stop generating; takes effect before the next decoding step."""
        self.cancelled.set()

    def fail(self, error: BaseException) -> None:
        """End the request with ``error`` (its other choices are dropped)."""
        self.emit(Failed(error))

    def emit(self, event: Event) -> None:
        if self.failed is not None:
            return
        if isinstance(event, Failed):
            self.failed = event.error
            self.cancelled.set()  # the request's other choices leave at the next step
            self.done.set()
        elif isinstance(event, Finished):
            self.results[event.result.index] = event.result
            if all(r is not None for r in self.results):
                self.done.set()
        if self._loop is not None:
            assert self._async is not None
            try:
                self._loop.call_soon_threadsafe(self._async.put_nowait, event)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                self.cancel()
        else:
            assert self._sync is not None
            self._sync.put(event)

    def __iter__(self) -> Iterator[Delta | Finished]:
        assert self._sync is not None, "an async completion: use `async for`"
        done = 0
        while done < self.n:
            event = self._sync.get()
            if isinstance(event, Failed):
                raise event.error
            done += isinstance(event, Finished)
            yield event

    async def __aiter__(self) -> AsyncIterator[Delta | Finished]:
        assert self._async is not None, "a sync completion: use `for`"
        done = 0
        while done < self.n:
            event = await self._async.get()
            if isinstance(event, Failed):
                raise event.error
            done += isinstance(event, Finished)
            yield event

    def wait(self) -> list[ChoiceResult]:
        """Block until every choice has finished (sync completions)."""
        for _ in self:
            pass
        return [r for r in self.results if r is not None]
