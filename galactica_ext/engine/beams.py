"""Beam search and group (diverse) beam search inside the engine's loop, one step per call.

Each search keeps its beams as a small batch with its own cache (all beams share the prompt,
so no padding) and advances one token per scheduler iteration, alongside the continuous
batch: a long search never holds up a short request, and cancellation is seen every step.

``BeamSearch`` is transformers 5's beam search (``GenerationMixin._beam_search``) for one
prompt, with ``do_sample=False``, ``length_penalty=1.0`` and ``early_stopping=True``:
log-softmax of the logits, then ``logit_bias`` (added to the log-probabilities, as
``sequence_bias`` does), ``min_tokens`` and constraints; the top ``(1 + ends) * beams``
continuations; the best unfinished ones run on; a continuation that ends (an end token, a
stop string, or ``max_tokens``) among the top ``beams`` becomes a hypothesis scored by its
summed log-probability over its generated length. ``GroupBeamSearch`` is transformers' group
beam search (the v4 ``_group_beam_search`` with ``BeamSearchScorer``, now the hub's
``transformers-community/group-beam-search``; galai's ``generate_reference``): the beams in
``num_beam_groups`` groups, each group stepped in turn, its log-probabilities lowered by
``diversity_penalty`` times the number of times earlier groups chose the same token at this
step (``HammingDiversityLogitsProcessor``).

Where we differ, on purpose: a continuation whose score is impossible (-inf: its token is not
allowed; or -1e9: a placeholder beam) never becomes a result, so a constraint is never
escaped (GENRE's failure); with ``choices`` every finished choice is kept, whatever its rank,
so ``n`` distinct choices are always found, ranked by summed log-probability (length penalty
0); stop strings end a beam like an end token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .constraints import END, TrieNode
from .events import Delta
from .kvcache import growing_cache, reorder
from .sampling import Choice, SamplingError, add_bias, allow_only, ban_ends, check_logits
from .textstream import TextStream

if TYPE_CHECKING:
    from .requests import Request
    from .scheduler import Engine

NEG = -1.0e9
LENGTH_PENALTY = 1.0


@dataclass
class Hyp:
    """One beam: the tokens it generated, their log-probabilities, its place in a trie."""

    tokens: list[int]
    logprobs: list[Choice]
    node: TrieNode | int | None

    def extend(self, token: int, choice: Choice, node: TrieNode | int | None) -> Hyp:
        return Hyp([*self.tokens, token], [*self.logprobs, choice], node)


class _Beams:
    """What both searches share: the cache, the processed scores, endings and results."""

    def __init__(self, engine: Engine, request: Request) -> None:
        self.engine = engine
        self.request = request
        self.completion = request.completion
        self.params = p = request.params
        self.num_beams = b = request.num_beams
        self.ends = request.ends
        self.prompt = request.prompt_ids
        logits, layers, self.reused = engine.prefill_prompt(self.prompt)
        engine.prefix_cache.put(self.prompt, layers)
        self.cache = growing_cache(layers, b, len(self.prompt) + p.max_tokens)
        self.logits: torch.Tensor | None = logits.unsqueeze(0).expand(b, -1)
        self.vocab = logits.shape[-1]
        self.generated = 0
        root = request.trie.root if request.trie is not None else None
        self.beams = [Hyp([], [], root) for _ in range(b)]
        self.window = max(len(s) for s in p.stop) + 1 if p.stop else 0
        # choices are ranked by their summed log-probability; free text as transformers does
        self.length_penalty = 0.0 if request.trie is not None else LENGTH_PENALTY

    # ---- the model ------------------------------------------------------------------------

    def _forward(self) -> torch.Tensor:
        b = self.num_beams
        tokens = torch.tensor([[h.tokens[-1]] for h in self.beams], device=self.engine.device)
        position = len(self.prompt) + self.generated - 1
        positions = torch.full((b, 1), position, device=self.engine.device)
        return self.engine.decode(tokens, positions, self.cache)

    def _reorder(self, rows: list[int]) -> None:
        if rows != list(range(self.num_beams)):  # the prompt is the same in every row
            reorder(self.cache, rows, len(self.prompt))

    def _scores(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The beams' log-probabilities ``[beams, vocab]``: as the model gives them, and
        processed (bias, ``min_tokens``, constraints)."""
        if self.logits is None:
            self.logits = self._forward()
        logits = self.logits.to(torch.float32, copy=True)
        self.logits = None
        check_logits(logits)
        raw = torch.log_softmax(logits, dim=-1)
        scores = add_bias(raw.clone(), self.params)
        ban_ends(scores, self.generated, self.params, self.ends)
        for row, beam in enumerate(self.beams):
            allow = self._allowed(beam)
            if allow is not None:
                allow_only(scores[row], allow)
        return raw, scores

    def _allowed(self, beam: Hyp) -> torch.Tensor | None:
        request, device = self.request, self.engine.device
        if request.trie is not None:
            if not isinstance(beam.node, TrieNode):  # finished or dropped: nothing more
                return torch.zeros(0, dtype=torch.long, device=device)
            left = self.params.max_tokens - self.generated
            return request.trie.allowed(beam.node, left, request.end_id, device)
        fn = self.params.prefix_allowed_tokens_fn
        if fn is None:
            return None
        ids = torch.tensor([*self.prompt, *beam.tokens], device=device)
        allowed = list(fn(0, ids))  # an empty list means no constraint (as in ``choose``)
        return torch.tensor(allowed, device=device) if allowed else None

    # ---- one continuation ------------------------------------------------------------------

    def _extend(self, raw: torch.Tensor, rows: list[int], tokens: list[int]) -> list[Hyp]:
        """The candidate beams ``rows[i]`` + ``tokens[i]``, with log-probabilities."""
        index = torch.tensor(rows, device=raw.device)
        chosen = raw[index, torch.tensor(tokens, device=raw.device)].tolist()
        tops: list[list[tuple[int, float]]] = [[] for _ in rows]
        if self.params.logprobs:
            values, ids = torch.topk(raw.index_select(0, index), self.params.logprobs)
            tops = [
                list(zip(i, v, strict=True))
                for i, v in zip(ids.tolist(), values.tolist(), strict=True)
            ]
        out = []
        for row, token, lp, top in zip(rows, tokens, chosen, tops, strict=True):
            beam = self.beams[row]
            node = beam.node
            if isinstance(node, TrieNode):
                child = node.children.get(token)
                complete = token == self.request.end_id and node.choice is not None
                node = child if child is not None else END if complete else None
            out.append(beam.extend(token, Choice(token, lp, top), node))
        return out

    def _ends(self, hyp: Hyp) -> bool:
        """Whether a candidate is finished: an end token, a stop string, or the length."""
        if self.request.ended(hyp.tokens[-1], hyp.node):
            return True
        if self.request.full(len(hyp.tokens), self.engine.context):
            return True
        if self.window:
            tail = self.engine.tokenizer.decode(
                hyp.tokens[-self.window :], skip_special_tokens=self.params.skip_special_tokens
            )
            return any(stop in tail for stop in self.params.stop)
        return False

    # ---- results ----------------------------------------------------------------------------

    def _emit(self, hyps: list[Hyp], cancelled: bool = False) -> None:
        n = self.completion.n
        if not hyps:
            raise SamplingError("beam search found no sequence that satisfies the constraints")
        # a constraint that admits fewer sequences than asked: the best ones again
        hyps = [*hyps, *(hyps[i % len(hyps)] for i in range(max(0, n - len(hyps))))]
        p = self.params
        for index, hyp in enumerate(hyps[:n]):
            text = TextStream(self.engine.tokenizer, p.stop, p.skip_special_tokens)
            ended = bool(hyp.tokens) and self.request.ended(hyp.tokens[-1], hyp.node)
            for token in hyp.tokens[:-1] if ended else hyp.tokens:  # the end token: no text
                if text.stopped:
                    break
                text.push(token)
            reason = "cancelled" if cancelled else "stop" if ended or text.stopped else "length"
            logprobs = hyp.logprobs if p.logprobs is not None else []
            tail = Delta(index, text.text, hyp.tokens, logprobs)
            self.request.finish(
                index,
                reason,
                text.text,
                tail=tail,
                tokens=hyp.tokens,
                logprobs=hyp.logprobs,
                reused=self.reused,
            )

    def _normalised(self, score: float, length: int) -> float:
        return score / (max(length, 1) ** self.length_penalty)


class BeamSearch(_Beams):
    """transformers 5's beam search for one prompt (see the module's notes)."""

    def __init__(self, engine: Engine, request: Request) -> None:
        super().__init__(engine, request)
        b = self.num_beams
        self.running = torch.full((b,), NEG)
        self.running[0] = 0.0
        self.finished_scores = torch.full((b,), NEG)
        self.finished_flags = torch.zeros(b, dtype=torch.bool)
        self.finished: list[Hyp | None] = [None] * b
        self.improvable = True

    def step(self) -> bool:
        b, vocab = self.num_beams, self.vocab
        raw, scores = self._scores()
        keep = max(2, 1 + len(self.ends)) * b
        summed = scores + self.running.to(scores.device)[:, None]
        top, flat = (t.cpu() for t in torch.topk(summed.view(-1), keep))  # bookkeeping on the CPU
        rows, tokens = (flat // vocab).tolist(), (flat % vocab).tolist()
        dead = top < NEG / 10  # not allowed, or from a placeholder beam: never a result
        candidates = self._extend(raw, rows, tokens)
        hits = torch.tensor(
            [d or self._ends(c) for c, d in zip(candidates, dead.tolist(), strict=True)]
        )
        # the best unfinished continuations run on
        running = top + hits.float() * NEG
        chosen = torch.topk(running, b).indices.tolist()
        self.running = running[chosen]
        # continuations that finished among the top beams (any rank, with choices) are kept
        in_top = (
            torch.arange(keep) < b
            if self.request.trie is None
            else torch.ones(keep, dtype=torch.bool)
        )
        did = hits & in_top & ~dead
        gen = self.generated + 1
        final = top / (gen**self.length_penalty)
        if bool(self.finished_flags.all()):
            final = final + NEG
        if not self.improvable:
            final = final + NEG
        final = final + (~did).float() * NEG
        merged = torch.cat([self.finished_scores, final])
        best = torch.topk(merged, b).indices.tolist()
        pool = [*self.finished, *candidates]
        flags = torch.cat([self.finished_flags, did])
        self.finished = [pool[i] for i in best]
        self.finished_scores, self.finished_flags = merged[best], flags[best]
        self.generated = gen
        worst = torch.where(self.finished_flags, self.finished_scores.min(), torch.tensor(NEG))
        self.improvable = self.improvable and bool(
            (self.running[0] / gen**self.length_penalty > worst).any()
        )
        alive = bool((self.running > NEG / 10).any())
        if not self.improvable or bool(self.finished_flags.all()) or bool(hits.all()) or not alive:
            self._emit(
                [
                    h
                    for h, f in zip(self.finished, self.finished_flags.tolist(), strict=True)
                    if f and h
                ]
            )
            return True
        self.beams = [candidates[i] for i in chosen]
        self._reorder([rows[i] for i in chosen])
        return False

    def finish_cancelled(self) -> None:
        pool = [
            (float(s), h)
            for s, f, h in zip(
                self.finished_scores, self.finished_flags, self.finished, strict=True
            )
            if f and h
        ]
        pool += [
            (self._normalised(float(s), self.generated), h)
            for s, h in zip(self.running, self.beams, strict=True)
            if s > NEG / 10
        ]
        pool.sort(key=lambda x: -x[0])
        hyps = [h for _, h in pool] + [Hyp([], [], None)] * self.completion.n
        self._emit(hyps, cancelled=True)


class GroupBeamSearch(_Beams):
    """transformers' group beam search with Hamming diversity (see the module's notes)."""

    def __init__(self, engine: Engine, request: Request) -> None:
        super().__init__(engine, request)
        b, groups = self.num_beams, self.params.num_beam_groups
        self.size = b // groups
        self.scores = torch.full((b,), NEG)
        self.scores[:: self.size] = 0.0  # the first beam of each group
        self.hyps: list[list[tuple[float, Hyp]]] = [[] for _ in range(groups)]
        self.worst = [1e9] * groups
        self.done = [False] * groups

    def _add(self, group: int, score: float, hyp: Hyp) -> None:
        """``BeamHypotheses.add``: keep the group's ``size`` best hypotheses."""
        hyps = self.hyps[group]
        if len(hyps) < self.size or score > self.worst[group]:
            hyps.append((score, hyp))
            if len(hyps) > self.size:
                ranked = sorted((s, i) for i, (s, _) in enumerate(hyps))
                del hyps[ranked[0][1]]
                self.worst[group] = ranked[1][0]
            else:
                self.worst[group] = min(score, self.worst[group])

    def step(self) -> bool:
        b, size, vocab = self.num_beams, self.size, self.vocab
        pad = self.engine.tokenizer.pad_token_id
        raw, processed = self._scores()
        current = torch.zeros(b, dtype=torch.long)
        scores = torch.zeros(b)
        rows = [0] * b
        beams: list[Hyp] = [self.beams[0]] * b
        keep = max(2, 1 + len(self.ends)) * size
        gen = self.generated + 1
        for group in range(self.params.num_beam_groups):
            first = group * size
            group_scores = processed[first : first + size]
            if first:
                used = torch.bincount(current[:first], minlength=vocab)
                used = used.to(group_scores.device, group_scores.dtype)
                group_scores = group_scores - self.params.diversity_penalty * used
            summed = group_scores + self.scores[first : first + size, None].to(group_scores.device)
            top, flat = (t.cpu() for t in torch.topk(summed.reshape(-1), keep))
            if self.done[group]:  # a finished group feeds padding
                current[first : first + size] = pad
                rows[first : first + size] = [first] * size
                beams[first : first + size] = [
                    self.beams[first].extend(pad, Choice(pad), None)
                ] * size
                continue
            picks = [
                (s, first + i // vocab, i % vocab)
                for s, i in zip(top.tolist(), flat.tolist(), strict=True)
            ]
            cands = self._extend(raw, [r for _, r, _ in picks], [t for _, _, t in picks])
            slot = first
            for rank, ((score, row, token), hyp) in enumerate(zip(picks, cands, strict=True)):
                if score < NEG / 10:
                    continue  # not allowed, or a placeholder beam's
                if self._ends(hyp):
                    if rank < size:
                        self._add(group, score / gen**self.length_penalty, hyp)
                else:
                    scores[slot], current[slot], rows[slot], beams[slot] = score, token, row, hyp
                    slot += 1
                if slot == first + size:
                    break
            for empty in range(slot, first + size):  # a constraint left too few: drop them
                scores[empty], current[empty], rows[empty] = float("-inf"), pad, first
                beams[empty] = self.beams[first].extend(pad, Choice(pad), None)
            self.done[group] = self.done[group] or len(self.hyps[group]) >= size
        self.generated = gen
        self.scores, self.beams = scores, beams
        limit = self.request.full(gen, self.engine.context)
        if all(self.done) or limit:
            self._finalise()
            return True
        self._reorder(rows)
        return False

    def _finalise(self, cancelled: bool = False) -> None:
        for group in range(self.params.num_beam_groups):
            if self.done[group]:
                continue
            for row in range(group * self.size, (group + 1) * self.size):
                score = float(self.scores[row])
                if score > NEG / 10:
                    self._add(group, self._normalised(score, self.generated), self.beams[row])
        pool = sorted((h for hyps in self.hyps for h in hyps), key=lambda x: x[0])
        best = [pool.pop()[1] for _ in range(min(len(pool), self.completion.n))]
        if cancelled:
            best += [Hyp([], [], None)] * self.completion.n
        self._emit(best, cancelled)

    def finish_cancelled(self) -> None:
        self._finalise(cancelled=True)
