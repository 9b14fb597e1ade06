"""Contrastive search (Su et al., 2022), as transformers implements it, one step per call.

At each step the ``top_k`` most probable next tokens (after ``logit_bias``, ``min_tokens``
and constraints) are each run through the model; each candidate's score is
``(1 - penalty_alpha) * probability - penalty_alpha * degeneration penalty``, the penalty
being the largest cosine similarity between the candidate's last hidden state and the hidden
states of every earlier token (prompt included); the best candidate is taken (transformers'
``_contrastive_search`` and ``_ranking_fast``, now the hub's
``transformers-community/contrastive-search``). One difference: a candidate of probability 0
(masked by a constraint) is never taken. The sequence streams like a greedy one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from transformers import DynamicCache

from .kvcache import from_cache, growing_cache, reorder
from .sampling import SamplingError, add_bias, allow_only, ban_ends, check_logits, scored

if TYPE_CHECKING:
    from .requests import Request, SeqState
    from .scheduler import Engine


class ContrastiveSearch:
    """One request decoded by contrastive search, with its own cache."""

    def __init__(self, engine: Engine, request: Request) -> None:
        self.engine = engine
        self.request = request
        self.completion = request.completion
        self.seq: SeqState = engine.new_sequence(request, 0, 0)
        ids = torch.tensor([request.prompt_ids], device=engine.device)
        cache = DynamicCache()
        out = engine.run_model(
            input_ids=ids, cache=cache, use_cache=True, output_hidden_states=True, logits_to_keep=1
        )
        self.rows = min(request.params.top_k, out.logits.shape[-1])
        capacity = len(request.prompt_ids) + request.params.max_tokens
        self.cache = growing_cache(from_cache(cache), self.rows, capacity)
        self.context = out.hidden_states[-1][0].float()  # [tokens, hidden]
        self.logits = out.logits[0, -1]

    def step(self) -> bool:
        engine, seq, params = self.engine, self.seq, self.request.params
        logits = self.logits.to(torch.float32, copy=True)
        check_logits(logits)
        add_bias(logits, params)
        logprobs = torch.log_softmax(logits, dim=-1)
        ban_ends(logits, len(seq.generated), params, self.request.ends)
        fn = params.prefix_allowed_tokens_fn
        if fn is not None:
            allowed = list(fn(0, torch.tensor(seq.ids, device=engine.device)))
            if allowed:
                allow_only(logits, torch.tensor(allowed, device=engine.device))
        allow_only(logits, engine.allowed_tokens(seq))
        probs = torch.softmax(logits, dim=-1)
        k = self.rows
        top_probs, top_ids = torch.topk(probs, k)
        # every candidate one step further: one row each (the rows are the same until now)
        position = torch.full((k, 1), seq.kv_len + 1, device=engine.device)
        out = engine.run_model(
            input_ids=top_ids.view(k, 1),
            position_ids=position,
            cache=self.cache,
            use_cache=True,
            output_hidden_states=True,
            logits_to_keep=1,
        )
        hidden = out.hidden_states[-1][:, -1].float()  # [k, hidden]
        context = self.context / self.context.norm(dim=-1, keepdim=True)
        similarity = (context @ (hidden / hidden.norm(dim=-1, keepdim=True)).T).max(dim=0).values
        alpha = params.penalty_alpha
        score = (1.0 - alpha) * top_probs - alpha * similarity
        score = score.masked_fill(top_probs <= 0, float("-inf"))
        if not torch.isfinite(score.max()):
            raise SamplingError("no token is allowed here: every next token has probability 0")
        pick = int(torch.argmax(score))
        token = int(top_ids[pick])
        last = self.cache.layers[0].length - 1
        reorder(self.cache, [pick] * k, last)  # every row takes the chosen token
        self.context = torch.cat([self.context, hidden[pick : pick + 1]])
        self.logits = out.logits[pick, -1]
        engine.record(seq, scored(token, logprobs, params.logprobs))
        return engine.finish_if_done(seq)

    def finish_cancelled(self) -> None:
        self.engine.finish(self.seq, "cancelled")
