"""The generation loop: a queue, continuous batching, prefix reuse, streaming, cancellation.

One worker thread owns the model. Requests wait in a bounded queue; between two decoding
steps the worker admits waiting requests (prefilling only the part of each prompt that no
recent sequence already computed), then runs one step for every running sequence at once.
A cancelled request leaves at the next step. Beam search (citation suggestions) runs through
transformers' ``generate``.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache, StoppingCriteria, StoppingCriteriaList

from ..specs import CONTEXT_LENGTH
from .kvcache import BatchKV, LayerKV, PrefixCache, from_cache, to_cache
from .loading import LoadedModel
from .sampling import Choice, SamplingParams, choose
from .textstream import TextStream

log = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    """The engine's queue is full; try again shortly."""


class PromptTooLong(ValueError):
    """The prompt and ``max_tokens`` together exceed the model's context."""


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
    error: BaseException


Event = Delta | Finished | Failed


class Completion:
    """A submitted request: iterate it (sync or async) for events, or cancel it."""

    def __init__(self, n: int, loop: asyncio.AbstractEventLoop | None) -> None:
        self.n = n
        self.cancelled = threading.Event()
        self.results: list[ChoiceResult | None] = [None] * n
        self._loop = loop
        self._sync: queue.SimpleQueue[Event] | None = None if loop else queue.SimpleQueue()
        self._async: asyncio.Queue[Event] | None = asyncio.Queue() if loop else None

    def cancel(self) -> None:
        """Stop generating; takes effect before the next decoding step."""
        self.cancelled.set()

    def emit(self, event: Event) -> None:
        if isinstance(event, Finished):
            self.results[event.result.index] = event.result
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


@dataclass
class _Request:
    completion: Completion
    prompt_ids: list[int]
    truncated: bool
    params: SamplingParams
    num_beams: int = 1


@dataclass
class _Sequence:
    request: _Request
    index: int
    ids: list[int]  # prompt and generated tokens
    prompt_len: int
    text: TextStream
    generator: torch.Generator | None
    next_token: int = -1
    generated: list[int] = field(default_factory=list)
    logprobs: list[Choice] = field(default_factory=list)
    reused: int = 0

    @property
    def kv_len(self) -> int:  # tokens in the cache: all but the last sampled one
        return len(self.ids) - 1


class Engine:
    """Serves generation requests for one loaded model from a single worker thread."""

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        max_batch: int = 8,
        max_queue: int = 64,
        prefix_cache_bytes: int | None = None,
        context: int = CONTEXT_LENGTH,
    ) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.device = loaded.device
        self.context = min(context, self.model.config.max_position_embeddings)
        self.max_batch = max_batch
        self.max_queue = max_queue
        if prefix_cache_bytes is None:  # a few full-context prompts
            prefix_cache_bytes = 4 * self._kv_bytes_per_token() * self.context
        self.prefix_cache = PrefixCache(prefix_cache_bytes)
        self.eos_ids = [self.tokenizer.eos_token_id]
        self._waiting: deque[_Request] = deque()
        self._active: list[_Sequence] = []
        self._batch = BatchKV()
        self._lock = threading.Condition()
        self._closed = False
        self.steps = 0
        self._worker = threading.Thread(target=self._run, name="galactica-engine", daemon=True)
        self._worker.start()

    # ---- public API ---------------------------------------------------------------------

    def encode(self, prompt: str) -> list[int]:
        from .tokenizer import encode

        return encode(self.tokenizer, prompt)

    def submit(
        self,
        prompt: str | list[int],
        params: SamplingParams,
        *,
        n: int = 1,
        num_beams: int = 1,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Completion:
        """Queue a request; returns at once. ``n`` choices: sampled, or the ``n`` best of
        ``num_beams`` beams. Pass ``loop`` to consume the events with ``async for``."""
        params.validate(self.context)
        if not 1 <= n <= 16:
            raise ValueError(f"n={n} must be between 1 and 16")
        if num_beams > 1 and n > num_beams:
            raise ValueError(f"n={n} cannot exceed the number of beams ({num_beams})")
        ids = self.encode(prompt) if isinstance(prompt, str) else list(prompt)
        if not ids:
            raise ValueError("the prompt is empty: give at least one token")
        if any(not 0 <= i < self.model.config.vocab_size for i in ids):
            raise ValueError(f"token ids must be between 0 and {self.model.config.vocab_size - 1}")
        ids, truncated = self._fit(ids, params)
        completion = Completion(n, loop)
        with self._lock:
            if self._closed:
                raise RuntimeError("the engine is closed")
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(f"{len(self._waiting)} requests are waiting; try again shortly")
            self._waiting.append(_Request(completion, ids, truncated, params, num_beams))
            self._lock.notify()
        return completion

    def generate(
        self, prompt: str | list[int], params: SamplingParams, **kwargs
    ) -> list[ChoiceResult]:
        """Submit and wait: the finished choices."""
        return self.submit(prompt, params, **kwargs).wait()

    def stream(self, prompt: str | list[int], params: SamplingParams) -> Iterator[str]:
        """The text of one choice as it is generated."""
        for event in self.submit(prompt, params):
            if isinstance(event, Delta) and event.text:
                yield event.text

    @property
    def load(self) -> dict[str, int]:
        """How busy the engine is (for /health and 503 decisions)."""
        return {"running": len(self._active), "waiting": len(self._waiting)}

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for request in self._waiting:
                request.completion.emit(Failed(RuntimeError("the engine was closed")))
            self._waiting.clear()
            self._lock.notify()
        self._worker.join(timeout=10)

    # ---- worker -------------------------------------------------------------------------

    def _fit(self, ids: list[int], params: SamplingParams) -> tuple[list[int], bool]:
        keep = params.truncate_prompt_tokens
        truncated = False
        if keep is not None and len(ids) > keep:
            ids, truncated = ids[-keep:], True
        if len(ids) + params.max_tokens > self.context:
            raise PromptTooLong(
                f"the prompt is {len(ids)} tokens and max_tokens is {params.max_tokens}: together "
                f"more than the model's context of {self.context} tokens; shorten the prompt, "
                "lower max_tokens or set truncate_prompt_tokens"
            )
        return ids, truncated

    def _kv_bytes_per_token(self) -> int:
        cfg = self.model.config
        return 2 * cfg.num_hidden_layers * cfg.hidden_size * self.loaded.dtype.itemsize

    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            with self._lock:
                while not self._waiting and not self._active and not self._closed:
                    self._lock.wait()
                if self._closed:
                    break
            try:
                with torch.inference_mode():
                    self._admit()
                    if self._active:
                        self._step()
            except Exception as err:  # e.g. out of memory: fail what ran, keep serving
                log.exception("generation failed")
                for seq in self._active:
                    seq.request.completion.emit(Failed(err))
                self._active = []
                self._batch = BatchKV()
        for seq in self._active:
            seq.request.completion.emit(Failed(RuntimeError("the engine was closed")))

    def _admit(self) -> None:
        while True:
            with self._lock:
                if not self._waiting or len(self._active) >= self.max_batch:
                    return
                request = self._waiting.popleft()
            if request.completion.cancelled.is_set():
                for index in range(request.completion.n):
                    request.completion.emit(Finished(self._result_of_unstarted(request, index)))
                continue
            try:
                if request.num_beams > 1:
                    self._beam_search(request)
                else:
                    self._start(request)
            except Exception as err:
                log.exception("prefill failed")
                request.completion.emit(Failed(err))

    def _result_of_unstarted(self, request: _Request, index: int) -> ChoiceResult:
        return ChoiceResult(index, "", "cancelled", [], len(request.prompt_ids), request.truncated)

    def _start(self, request: _Request) -> None:
        ids = request.prompt_ids
        running = []
        if self.prefix_cache.max_bytes:  # 0: prefix reuse disabled, always prefill in full
            running = [(s.ids[: s.kv_len], self._batch.row(i)) for i, s in enumerate(self._active)]
        hit = self.prefix_cache.longest(ids, running)
        start = hit.length if hit else 0
        logits, layers = self._prefill(ids[start:], hit.layers if hit else None, start)
        for index in range(request.completion.n):
            params = request.params
            seq = _Sequence(
                request=request,
                index=index,
                ids=list(ids),
                prompt_len=len(ids),
                text=TextStream(self.tokenizer, params.stop, params.skip_special_tokens),
                generator=self._generator(params, index),
                reused=start,
            )
            self._accept(seq, logits)
            if self._finish_if_done(seq):
                self.prefix_cache.put(ids, layers)
            else:
                self._active.append(seq)
                self._batch.add(layers)

    def _generator(self, params: SamplingParams, index: int) -> torch.Generator | None:
        if params.temperature == 0:
            return None
        gen = torch.Generator(device=self.device)
        gen.manual_seed(params.seed + index if params.seed is not None else torch.seed())
        return gen

    def _prefill(
        self, ids: list[int], cached: LayerKV | None, start: int
    ) -> tuple[torch.Tensor, LayerKV]:
        """Run ``ids`` after ``start`` cached tokens: the last position's logits and the cache."""
        cache = to_cache(cached) if cached else DynamicCache()
        input_ids = torch.tensor([ids], device=self.device)
        positions = torch.arange(start, start + len(ids), device=self.device).unsqueeze(0)
        out = self.model(
            input_ids=input_ids,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[0, -1], from_cache(cache)

    def _accept(self, seq: _Sequence, logits: torch.Tensor) -> None:
        params = seq.request.params
        ids_so_far = (
            torch.tensor(seq.ids, device=self.device) if params.prefix_allowed_tokens_fn else None
        )
        choice = choose(logits, params, seq.generator, ids_so_far, len(seq.generated), self.eos_ids)
        token = choice.token_id
        seq.ids.append(token)
        seq.generated.append(token)
        seq.next_token = token
        if params.logprobs is not None:
            seq.logprobs.append(choice)
        ended = token in self.eos_ids and not params.ignore_eos
        stop_id = token in params.stop_token_ids
        text = "" if (ended or stop_id) else seq.text.push(token)
        seq.request.completion.emit(
            Delta(seq.index, text, [token], [choice] if params.logprobs is not None else [])
        )

    def _finish_if_done(self, seq: _Sequence, cancelled: bool = False) -> bool:
        params = seq.request.params
        last = seq.generated[-1] if seq.generated else None
        if cancelled:
            reason = "cancelled"
        elif (
            last is not None
            and ((last in self.eos_ids and not params.ignore_eos) or last in params.stop_token_ids)
        ) or seq.text.stopped:
            reason = "stop"
        elif len(seq.generated) >= params.max_tokens or len(seq.ids) >= self.context:
            reason = "length"
        else:
            return False
        tail = seq.text.flush()
        if tail:
            seq.request.completion.emit(Delta(seq.index, tail, []))
        seq.request.completion.emit(
            Finished(
                ChoiceResult(
                    index=seq.index,
                    text=seq.text.text,
                    finish_reason=reason,
                    token_ids=seq.generated,
                    prompt_tokens=seq.prompt_len,
                    truncated=seq.request.truncated,
                    logprobs=seq.logprobs,
                    reused_tokens=seq.reused,
                )
            )
        )
        return True

    def _step(self) -> None:
        keep: list[int] = []
        for i, seq in enumerate(self._active):
            if seq.request.completion.cancelled.is_set():
                self._retire(i, seq, cancelled=True)
            else:
                keep.append(i)
        self._shrink(keep)
        if not self._active:
            return
        batch = self._batch
        tokens = torch.tensor([[s.next_token] for s in self._active], device=self.device)
        positions = torch.tensor([[s.kv_len] for s in self._active], device=self.device)
        mask = None
        if batch.padded:
            mask = torch.cat([batch.mask, batch.mask.new_ones((batch.size, 1))], dim=1)
        out = self.model(
            input_ids=tokens,
            attention_mask=mask,
            position_ids=positions,
            cache=batch.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        batch.grew()
        self.steps += 1
        keep = []
        for i, seq in enumerate(self._active):
            self._accept(seq, out.logits[i, -1])
            if self._finish_if_done(seq):
                self._remember(i, seq)
            else:
                keep.append(i)
        self._shrink(keep)

    def _retire(self, i: int, seq: _Sequence, cancelled: bool) -> None:
        self._finish_if_done(seq, cancelled=cancelled)
        self._remember(i, seq)

    def _remember(self, i: int, seq: _Sequence) -> None:
        """Keep a finished sequence's cache for prompts that extend it."""
        self.prefix_cache.put(seq.ids[: seq.kv_len], self._batch.row(i))

    def _shrink(self, keep: list[int]) -> None:
        if len(keep) != len(self._active):
            self._active = [self._active[i] for i in keep]
            self._batch.keep(keep)

    # ---- beam search ----------------------------------------------------------------------

    def _beam_search(self, request: _Request) -> None:
        params = request.params
        completion = request.completion

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs) -> torch.Tensor:
                done = completion.cancelled.is_set()
                return torch.full(
                    (input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device
                )

        allowed_fn = params.prefix_allowed_tokens_fn
        if allowed_fn is not None:  # as in the sampling path, an empty list means no constraint
            every = list(range(self.model.config.vocab_size))

            def allowed(batch_id: int, ids: torch.Tensor) -> list[int]:
                return list(allowed_fn(batch_id, ids)) or every

        input_ids = torch.tensor([request.prompt_ids], device=self.device)
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=params.max_tokens,
            min_new_tokens=params.min_tokens or None,
            num_beams=request.num_beams,
            num_return_sequences=completion.n,
            do_sample=False,
            early_stopping=True,
            eos_token_id=[*self.eos_ids, *params.stop_token_ids],
            pad_token_id=self.tokenizer.pad_token_id,
            stopping_criteria=StoppingCriteriaList([_Cancelled()]),
            prefix_allowed_tokens_fn=allowed if allowed_fn is not None else None,
            sequence_bias={(t,): float(b) for t, b in params.logit_bias.items()} or None,
        )
        cancelled = completion.cancelled.is_set()
        for index, row in enumerate(out[:, input_ids.shape[1] :].tolist()):
            generated = [t for t in row if t != self.tokenizer.pad_token_id]
            text = TextStream(self.tokenizer, params.stop, params.skip_special_tokens)
            for token in generated:
                if token in self.eos_ids or token in params.stop_token_ids or text.stopped:
                    break
                text.push(token)
            last = generated[-1] if generated else None
            stopped = text.stopped or last in self.eos_ids or last in params.stop_token_ids
            reason = "cancelled" if cancelled else "stop" if stopped else "length"
            completion.emit(Delta(index, text.text, generated))
            completion.emit(
                Finished(
                    ChoiceResult(
                        index,
                        text.text,
                        reason,
                        generated,
                        len(request.prompt_ids),
                        request.truncated,
                    )
                )
            )
