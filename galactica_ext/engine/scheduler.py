"""The generation loop: a queue, continuous batching, prefix reuse, streaming, cancellation.

One worker thread owns the model. Requests wait in a bounded queue; between two decoding
steps the worker admits waiting requests (prefilling only the part of each prompt that no
recent sequence already computed), then runs one step for every running sequence at once.
Searches (beam search, group beam search, contrastive search) keep their own small batch
and cache and advance one step per loop iteration too, so a long search never holds up a
short request. A cancelled request leaves at the next step; a sequence whose next token
cannot be chosen (a numerical failure, a constraint that raises) fails alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections import deque
from typing import Any

import torch
from transformers import DynamicCache

from ..protocol.limits import MAX_N
from ..specs import CONTEXT_LENGTH
from ..tasks import escape_sequences
from .constraints import ChoiceTrie, TrieCache, TrieNode
from .decode_step import DecodeStep
from .events import ChoiceResult, Completion, Delta, EngineClosed
from .kvcache import (
    BatchKV,
    LayerKV,
    PrefixCache,
    PrefixHit,
    from_cache,
    prompt_cache,
    room_for,
)
from .loading import LoadedModel
from .prefill import packed, prefill, prefill_many
from .requests import Request, SeqState, check_modes
from .sampling import (
    Choice,
    SamplingParams,
    banned_ends,
    choose,
    choose_greedy,
    plain_greedy,
)
from .searches import Searches
from .textstream import TextStream
from .thread_tuner import ThreadTuner

__all__ = ["Engine", "PromptTooLong", "QueueFull"]

log = logging.getLogger(__name__)


#: the fewest cached tokens worth reusing (a shorter match is computed again)
MIN_REUSE = 8
#: the most beams of one search (``n`` of them are returned, at most MAX_N)
MAX_BEAMS = 2 * MAX_N
#: a long prompt's chunk while more than one thread runs it (see :meth:`Engine._prefill`)
PROMPT_CHUNK = 256


class QueueFull(RuntimeError):
    """The engine's queue is full; try again shortly."""


class PromptTooLong(ValueError):
    """The prompt and ``max_tokens`` together exceed the model's context."""


#: the prefix cache's budget (reported by /health): room for this many documents of this many
#: tokens, enough for an editor moving between a few notebooks' cells (one entry per document:
#: its newer version replaces the older, ``kvcache.supersedes``). galactica-125m in bfloat16:
#: 151 MB; 1.3b: 805 MB (four full 2,048-token contexts were 1.6 GB there)
PREFIX_DOCUMENTS = 4
PREFIX_DOCUMENT_TOKENS = 1024


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
        if prefix_cache_bytes is None:
            prefix_cache_bytes = (
                PREFIX_DOCUMENTS * PREFIX_DOCUMENT_TOKENS * self._kv_bytes_per_token()
            )
        self.prefix_cache = PrefixCache(prefix_cache_bytes)
        self.tries = TrieCache(self._encode_choices)
        self.eos_ids = (self.tokenizer.eos_token_id,)
        self._waiting: deque[Request] = deque()
        self._active: list[SeqState] = []
        self._searches = Searches()
        self._batch = BatchKV()
        self._lock = threading.Condition()
        self._closed = False
        setting = loaded.thread_setting
        #: torch's threads for each forward (adapting where the loader was told "auto")
        self.threads = (
            ThreadTuner(setting.choices, setting.initial)
            if setting is not None
            else ThreadTuner([torch.get_num_threads()])
        )
        #: decoding steps without transformers' per-call machinery, where that applies
        self.decode_step = DecodeStep.build(self.model)
        self.steps = 0  # decoding steps of the continuous batch
        self.batched_prefills = 0  # forwards that prefilled several cold prompts at once
        self._worker = threading.Thread(target=self._run, name="galactica-engine", daemon=True)
        self._worker.start()

    # ---- public API ---------------------------------------------------------------------

    def encode(self, prompt: str) -> list[int]:
        from .tokenizer import encode

        return encode(self.tokenizer, prompt)

    def _encode_choices(self, choices: list[str]) -> list[list[int]]:
        texts = [escape_sequences(c) for c in choices]
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def choice_trie(self, choices: tuple[str, ...] | list[str]) -> ChoiceTrie:
        """The token trie of ``choices``: built once per distinct list, then cached (call it
        from a worker thread first for a large list; ``submit`` finds it built)."""
        return self.tries.get(choices)

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
        if not 1 <= n <= MAX_N:
            raise ValueError(f"n={n} must be between 1 and {MAX_N}")
        if not 1 <= num_beams <= MAX_BEAMS:
            raise ValueError(f"num_beams={num_beams} must be between 1 and {MAX_BEAMS}")
        if num_beams > 1 and n > num_beams:
            raise ValueError(f"n={n} cannot exceed the number of beams ({num_beams})")
        trie = None
        if params.choices is not None:
            params, trie, num_beams = self._choice_request(params, n, num_beams)
        else:
            check_modes(params, n, num_beams)
        ids = self.encode(prompt) if isinstance(prompt, str) else list(prompt)
        if not ids:
            raise ValueError("the prompt is empty: give at least one token")
        vocab = self.model.config.vocab_size
        if any(not 0 <= i < vocab for i in ids):
            raise ValueError(f"token ids must be between 0 and {vocab - 1}")
        for name, tokens in (
            ("logit_bias", params.logit_bias),
            ("stop_token_ids", params.stop_token_ids),
        ):
            if any(not 0 <= t < vocab for t in tokens):
                raise ValueError(f"{name} token ids must be between 0 and {vocab - 1}")
        ids, truncated = self._fit(ids, params)
        completion = Completion(n, loop)
        with self._lock:
            if self._closed:
                raise RuntimeError("the engine is closed")
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(f"{len(self._waiting)} requests are waiting; try again shortly")
            request = Request(completion, ids, truncated, params, num_beams, trie, self.eos_ids)
            self._waiting.append(request)
            self._lock.notify()
        return completion

    def _choice_request(
        self, params: SamplingParams, n: int, num_beams: int
    ) -> tuple[SamplingParams, ChoiceTrie, int]:
        """Checks and settings of a choice-constrained request. The choices decide where the
        text ends: stop strings, ``min_tokens`` and beam groups don't apply."""
        trie = self.choice_trie(params.choices)
        if trie.root.need > params.max_tokens:
            raise ValueError(
                f"no choice fits in max_tokens={params.max_tokens}: the shortest needs "
                f"{trie.root.need} tokens (its end token included)"
            )
        params = dataclasses.replace(params, stop=[], min_tokens=0, num_beam_groups=1)
        check_modes(params, n, num_beams)
        if params.temperature == 0 and n > 1 and not params.contrastive:  # distinct, best first
            num_beams = max(num_beams, n)
        if num_beams > 1 and n > trie.fitting(params.max_tokens):
            raise ValueError(
                f"n={n} distinct choices asked, but only {trie.fitting(params.max_tokens)} "
                f"of the choices fit in max_tokens={params.max_tokens}"
            )
        return params, trie, num_beams

    def generate(
        self, prompt: str | list[int], params: SamplingParams, **kwargs
    ) -> list[ChoiceResult]:
        """Submit and wait: the finished choices."""
        return self.submit(prompt, params, **kwargs).wait()

    @property
    def load(self) -> dict[str, int]:
        """How busy the engine is (for /health and 503 decisions); a search counts as one."""
        running = [s.request.completion for s in list(self._active)]
        running += [s.completion for s in list(self._searches.running)]
        # a request whose results are all out is done, even before the worker tidies up
        busy = sum(not completion.done.is_set() for completion in running)
        return {"running": busy, "waiting": len(self._waiting)}

    def cancel_all(self, wait: bool = True, timeout: float | None = 30) -> None:
        """Cancel every running and waiting request (each gets its cancelled results); with
        ``wait``, return once the worker has finished them all (one step at most)."""
        with self._lock:
            completions = [r.completion for r in self._waiting]
            completions += [s.request.completion for s in list(self._active)]
            completions += [s.completion for s in list(self._searches.running)]
            for completion in completions:
                completion.cancel()
            self._lock.notify()
        if wait and self._worker.is_alive():
            for completion in completions:
                completion.done.wait(timeout)

    def close(self) -> None:
        """Fail every waiting and running request (``EngineClosed``), then stop the worker."""
        with self._lock:
            self._closed = True
            for request in self._waiting:
                request.completion.fail(EngineClosed("the engine was closed before this started"))
            self._waiting.clear()
            self._lock.notify()
        self._worker.join(timeout=30)

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
                while (
                    not self._waiting and not self._active and not self._searches
                ) and not self._closed:
                    self._lock.wait()
                if self._closed:
                    break
            try:
                with torch.inference_mode():
                    start = time.perf_counter()
                    self._admit()
                    if self._active:
                        self._step()
                    self._searches.step(time.perf_counter() - start, bool(self._active))
            except Exception as err:  # e.g. out of memory: fail what ran, keep serving
                log.exception("generation failed")
                for seq in self._active:
                    seq.request.completion.fail(err)
                self._active = []
                self._batch = BatchKV()
        closed = EngineClosed("the engine was closed (the model was unloaded) while generating")
        for seq in self._active:
            seq.request.completion.fail(closed)
        for search in self._searches.running:
            search.completion.fail(closed)
        self._active, self._searches.running = [], []

    def _admit(self) -> None:
        with self._lock:  # cancelled requests leave the queue at once, room or not
            cancelled = [r for r in self._waiting if r.completion.cancelled.is_set()]
            for request in cancelled:
                self._waiting.remove(request)
        for request in cancelled:
            request.finish_unstarted()
        plain: list[Request] = []  # started together: their cold prompts in one prefill
        while True:
            with self._lock:
                busy = len(self._active) + len(self._searches)
                busy += sum(r.completion.n for r in plain)
                if not self._waiting or busy >= self.max_batch or self._closed:
                    break
                request = self._waiting.popleft()
            if self._plain(request):
                plain.append(request)
                continue
            try:
                self._begin(request)
            except Exception as err:
                log.exception("prefill failed")
                request.completion.fail(err)
        if plain:
            self._start_all(plain)

    def _plain(self, request: Request) -> bool:
        """Whether a request joins the continuous batch (not a search, not cancelled)."""
        return (
            request.num_beams == 1
            and not request.params.contrastive
            and not request.completion.cancelled.is_set()
        )

    def _start_all(self, requests: list[Request]) -> None:
        """Prefill and start requests: those that extend a cached prefix one by one, the
        others (cold prompts) together, in padded batches of at most PREFILL_TOKENS."""
        cold: list[Request] = []
        for request in requests:
            try:
                # an entry this prompt supersedes is taken, its buffers written on: the
                # request's cache goes back to the prefix cache when it ends (_remember)
                hit = self._lookup(request.prompt_ids, take=True)
                if hit is None:
                    cold.append(request)
                    continue
                ids, wanted = request.prompt_ids, request.params.max_tokens
                logits, cache = self._prefill(
                    ids[hit.length :], hit.layers, hit.length, wanted, taken=hit.taken
                )
                self._start(request, logits, cache, hit.length)
            except Exception as err:
                log.exception("prefill failed")
                request.completion.fail(err)
        for group in packed(cold, lambda r: len(r.prompt_ids)):
            # the prefix cache drops its oldest documents now, not when these caches are put
            tokens = sum(room_for(len(r.prompt_ids), r.params.max_tokens) for r in group)
            self.prefix_cache.make_room(tokens * self._kv_bytes_per_token())
            try:
                if len(group) == 1:
                    wanted = group[0].params.max_tokens
                    prefilled = [self._prefill(group[0].prompt_ids, None, 0, wanted)]
                else:
                    prefilled = self._prefill_many([r.prompt_ids for r in group])
                    self.batched_prefills += 1
            except Exception as err:
                log.exception("prefill failed")
                for request in group:
                    request.completion.fail(err)
                continue
            for request, (logits, layers) in zip(group, prefilled, strict=True):
                self._start(request, logits, layers, 0)

    def _begin(self, request: Request) -> None:
        from .beams import BeamSearch, GroupBeamSearch
        from .contrastive import ContrastiveSearch

        if request.completion.cancelled.is_set():
            request.finish_unstarted()
        elif request.params.contrastive:
            self._searches.add(ContrastiveSearch(self, request))
        elif request.num_beams > 1 and request.params.num_beam_groups > 1:
            self._searches.add(GroupBeamSearch(self, request))
        elif request.num_beams > 1:
            self._searches.add(BeamSearch(self, request))
        else:
            self._start_all([request])

    def new_sequence(self, request: Request, index: int, reused: int) -> SeqState:
        params = request.params
        return SeqState(
            request=request,
            index=index,
            ids=list(request.prompt_ids),
            text=TextStream(
                self.tokenizer, params.stop, params.skip_special_tokens, params.min_tokens
            ),
            generator=self._generator(params, index),
            reused=reused,
            node=request.trie.root if request.trie is not None else None,
        )

    def _start(
        self,
        request: Request,
        logits: torch.Tensor,
        prefilled: LayerKV | DynamicCache,
        reused: int,
    ) -> None:
        """Start a prefilled request's ``n`` sequences (or finish them at once). A request's
        own ``prompt_cache`` (one sequence) goes to the batch or the prefix cache uncopied."""
        own = isinstance(prefilled, DynamicCache) and request.completion.n == 1
        layers = from_cache(prefilled) if isinstance(prefilled, DynamicCache) else prefilled
        for index in range(request.completion.n):
            seq = self.new_sequence(request, index, reused)
            try:
                self._accept(seq, logits)
                done = self.finish_if_done(seq)
            except Exception as err:
                log.warning("a sequence failed: %s", err)
                request.completion.fail(err)
                return
            if done:
                self.prefix_cache.put(request.prompt_ids, layers, own=own)
            else:
                self._active.append(seq)
                self._batch.add(prefilled if own else layers)

    def _lookup(self, ids: list[int], take: bool = False) -> PrefixHit | None:
        """The longest computed prefix of ``ids``: cached, or a running sequence's. ``take``:
        as :meth:`PrefixCache.longest` says."""
        running = []
        if self.prefix_cache.max_bytes:  # 0: prefix reuse disabled, always prefill in full
            running = [(s.ids[: s.kv_len], self._batch.row(i)) for i, s in enumerate(self._active)]
        # a few shared tokens (a common first word) are not worth giving up a batched prefill
        return self.prefix_cache.longest(ids, running, min_length=MIN_REUSE, take=take)

    def prefill_prompt(self, ids: list[int]) -> tuple[torch.Tensor, LayerKV, int]:
        """The prompt's last logits and cache, reusing the longest cached prefix; and how
        many tokens were reused."""
        hit = self._lookup(ids)
        start = hit.length if hit else 0
        logits, cache = self._prefill(ids[start:], hit.layers if hit else None, start)
        return logits, from_cache(cache), start

    def run_model(self, **inputs: Any) -> Any:
        """The model's forward, with torch's threads chosen for its kind of work (a step or a
        prompt: engine/thread_tuner.py). Every forward of the engine goes through here."""
        rows, tokens = inputs["input_ids"].shape
        return self.threads.run(rows, tokens, lambda: self.model(**inputs))

    def decode(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        cache: Any,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One decoding step (``tokens``/``positions`` ``[rows, 1]``, ``cache`` extended in
        place, ``mask`` 2-D including the new token or None): the logits ``[rows, vocab]``."""
        rows = tokens.shape[0]
        step = self.decode_step
        if step is not None:
            return self.threads.run(rows, 1, lambda: step(tokens, positions, cache, mask))
        out = self.run_model(
            input_ids=tokens,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1]

    def _prefill_many(self, prompts: list[list[int]]) -> list[tuple[torch.Tensor, LayerKV]]:
        return prefill_many(self.run_model, self.device, self.tokenizer.pad_token_id, prompts)

    def _generator(self, params: SamplingParams, index: int) -> torch.Generator | None:
        if params.temperature == 0:
            return None
        gen = torch.Generator(device=self.device)
        gen.manual_seed(params.seed + index if params.seed is not None else torch.seed())
        return gen

    def _prefill(
        self,
        ids: list[int],
        cached: LayerKV | None,
        start: int,
        wanted: int = 0,
        taken: bool = False,
    ) -> tuple[torch.Tensor, DynamicCache]:
        """``ids`` after ``start`` cached tokens, into a ``prompt_cache`` with room for
        ``wanted`` tokens more (``kvcache.room_for``; ``taken``: ``cached`` is the caller's to
        write on). A long prompt runs in chunks of
        :data:`PROMPT_CHUNK` tokens while it has more than one thread: a chunk whose threads
        were crowded out by another process drops the rest to fewer (engine/thread_tuner.py)
        instead of the whole prompt stalling (measured, 2-core EPYC, 1,000 tokens of
        galactica-125m: 0.39 s in one forward, 0.40 s in chunks of 256; beside one busy
        process a 2-thread chunk took 1.5-2.5x as long as with 1 thread)."""
        room = min(self.context, room_for(start + len(ids), wanted))
        cache = prompt_cache(cached, room, taken=taken)
        if start and len(ids) == 1 and self.decode_step is not None:
            # one token after cached ones (an editor's pause that retokenized only the last
            # word): a decoding step, 0.70-0.83x the time of the model's forward at
            # galactica-125m, 0.93-0.96x at 1.3b (a 1,000-token document; two or more
            # tokens are faster in one forward)
            token = torch.tensor([ids], device=self.device)
            position = torch.tensor([[start]], device=self.device)
            return self.decode(token, position, cache)[0], cache
        while len(ids) >= 2 * PROMPT_CHUNK and self.threads.prompts_may_fall_back():
            prefill(self.run_model, self.device, ids[:PROMPT_CHUNK], cache, start)
            ids, start = ids[PROMPT_CHUNK:], start + PROMPT_CHUNK
        logits, _ = prefill(self.run_model, self.device, ids, cache, start)
        return logits, cache

    def allowed_tokens(self, seq: SeqState) -> torch.Tensor | None:
        """The tokens a choice-constrained sequence may take next (None: no such constraint)."""
        request = seq.request
        if request.trie is None:
            return None
        assert isinstance(seq.node, TrieNode)
        left = request.params.max_tokens - len(seq.generated)
        return request.trie.allowed(seq.node, left, request.end_id, self.device)

    def _accept(self, seq: SeqState, logits: torch.Tensor) -> None:
        params = seq.request.params
        ids_so_far = (
            torch.tensor(seq.ids, device=self.device) if params.prefix_allowed_tokens_fn else None
        )
        choice = choose(
            logits,
            params,
            seq.generator,
            ids_so_far,
            len(seq.generated),
            seq.request.ends,
            self.allowed_tokens(seq),
        )
        self.record(seq, choice)

    def record(self, seq: SeqState, choice: Choice) -> None:
        """Append the chosen token to ``seq`` and stream it."""
        params = seq.request.params
        token = choice.token_id
        seq.ids.append(token)
        seq.generated.append(token)
        seq.next_token = token
        if params.logprobs is not None:
            seq.logprobs.append(choice)
        if seq.request.trie is not None:
            assert isinstance(seq.node, TrieNode)
            seq.node = seq.request.trie.advance(seq.node, token, seq.request.end_id)
        text = "" if seq.request.ended(token, seq.node) else seq.text.push(token)
        seq.request.completion.emit(
            Delta(seq.index, text, [token], [choice] if params.logprobs is not None else [])
        )

    def finish_if_done(self, seq: SeqState, cancelled: bool = False) -> bool:
        """Finish ``seq`` if it is cancelled, stopped or out of room; whether it finished."""
        request = seq.request
        stopped = bool(seq.generated) and request.ended(seq.generated[-1], seq.node)
        if cancelled:
            reason = "cancelled"
        elif stopped or seq.text.stopped:
            reason = "stop"
        elif request.full(len(seq.generated), self.context):
            reason = "length"
        else:
            return False
        self.finish(seq, reason)
        return True

    def finish(self, seq: SeqState, reason: str) -> None:
        """Emit ``seq``'s held-back text and its result."""
        tail = Delta(seq.index, seq.text.flush(), [])
        seq.request.finish(
            seq.index,
            reason,
            seq.text.text,
            tail=tail,
            tokens=seq.generated,
            logprobs=seq.logprobs,
            reused=seq.reused,
        )

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
        logits = self.decode(tokens, positions, batch.cache, mask)
        batch.grew()
        self.steps += 1
        quick = self._greedy_choices(logits)
        keep = []
        for i, seq in enumerate(self._active):
            try:
                choice = quick.get(i)
                if choice is None:
                    self._accept(seq, logits[i])
                else:
                    self.record(seq, choice)
                done = self.finish_if_done(seq)
            except Exception as err:  # this sequence alone: the batch goes on
                log.warning("a sequence failed: %s", err)
                seq.request.completion.fail(err)
                continue
            if done:
                self._remember(i, seq)
            else:
                keep.append(i)
        self._shrink(keep)

    def _greedy_choices(self, logits: torch.Tensor) -> dict[int, Choice]:
        """The next tokens of the plain greedy rows, chosen for all of them at once."""
        rows = [i for i, s in enumerate(self._active) if plain_greedy(s.request.params)]
        if len(rows) < 2:
            return {}
        index = torch.tensor(rows, device=logits.device)
        seqs = [self._active[i] for i in rows]
        wanted = [s.request.params.logprobs for s in seqs]
        banned = [banned_ends(len(s.generated), s.request.params, s.request.ends) for s in seqs]
        picked = choose_greedy(logits.index_select(0, index), wanted, banned)
        return {i: c for i, c in zip(rows, picked, strict=True) if c is not None}

    def _retire(self, i: int, seq: SeqState, cancelled: bool) -> None:
        self.finish_if_done(seq, cancelled=cancelled)
        self._remember(i, seq)

    def _remember(self, i: int, seq: SeqState) -> None:
        """Keep a finished sequence's cache for prompts that extend it: the batch's last row
        hands its buffers over (the batch is emptied next), others are copied."""
        own = len(self._active) == 1
        self.prefix_cache.put(seq.ids[: seq.kv_len], self._batch.row(i), own=own)

    def _shrink(self, keep: list[int]) -> None:
        if len(keep) != len(self._active):
            self._active = [self._active[i] for i in keep]
            self._batch.keep(keep)
