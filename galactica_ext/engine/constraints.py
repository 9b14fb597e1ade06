"""Choice constraints: a token trie over a list of strings, and a cache of built tries.

A sequence constrained to ``choices`` walks the trie from its root: at each step only the
children of its node are allowed. **Rule for ending**: a choice is complete when the sequence
generates the request's end token right after the choice's last token (the first of
``stop_token_ids`` if any, else the end of document, id 2; for a grounded citation that is
``[END_REF]``). So every choice is scored by the model including its end, a choice that is a
prefix of another is allowed too (at its last token both the end token and the longer
choices' next tokens are allowed, and the model decides), and the text returned is exactly the
choice. A choice is tokenised on its own, as the prompt's tokenizer does it; GALACTICA's
tokenizer has no BOS and splits before a space, so this is how the choice's tokens follow a
prompt ending in a special token (``[START_REF]``) or a complete word. Paths that cannot end
within the ``max_tokens`` left are never allowed, so an allowed set is never empty.

In the engine: greedy with ``n > 1`` runs a beam search over the trie (``n`` distinct choices,
best summed log-probability first); sampled choices are independent draws (they may repeat);
stop strings, ``min_tokens``, ``ignore_eos`` and beam groups do not apply (the trie decides
where a choice ends; the returned choices are distinct anyway).
"""

from __future__ import annotations

import bisect
import gc
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch

#: the marker returned by ``ChoiceTrie.advance`` when the end token completed a choice
END = -1


class TrieNode:
    """A prefix of one or more choices' tokens."""

    __slots__ = ("cache", "children", "choice", "need", "widest")

    def __init__(self) -> None:
        self.children: dict[int, TrieNode] = {}
        self.choice: int | None = None  # the choice whose tokens end here
        self.need = 0  # the fewest tokens that finish a choice from here (end token included)
        self.widest = 0  # the most tokens any allowed step from here needs to finish
        self.cache: dict[int, torch.Tensor] = {}  # end id -> allowed ids


class ChoiceTrie:
    """The token trie of a list of choices."""

    def __init__(self, choices: Sequence[str], token_ids: Sequence[Sequence[int]]) -> None:
        self.choices = tuple(choices)
        self.root = TrieNode()
        self.nodes = 1
        self.lengths = sorted(len(ids) for ids in token_ids)
        for index, ids in enumerate(token_ids):
            if not ids:
                raise ValueError(f"choice {index} ({choices[index]!r}) has no tokens")
            node = self.root
            for token in ids:
                child = node.children.get(token)
                if child is None:
                    child = node.children[token] = TrieNode()
                    self.nodes += 1
                node = child
            if node.choice is None:
                node.choice = index
        self._measure(self.root)

    def _measure(self, root: TrieNode) -> None:
        order, stack = [], [root]  # iterative post-order: choices may be long
        while stack:
            node = stack.pop()
            order.append(node)
            stack.extend(node.children.values())
        for node in reversed(order):
            needs = [1 + c.need for c in node.children.values()]
            ends = [1] if node.choice is not None else []
            node.need = min(needs + ends)
            node.widest = max(needs + ends)

    def fitting(self, max_tokens: int) -> int:
        """How many choices (with their end token) fit in ``max_tokens``."""
        return bisect.bisect_right(self.lengths, max_tokens - 1)

    def allowed(self, node: TrieNode, left: int, end: int, device: torch.device) -> torch.Tensor:
        """The tokens allowed at ``node`` with ``left`` tokens to go (never empty when
        ``node.need <= left``, which the scheduler keeps true)."""
        if node.widest <= left:
            cached = node.cache.get(end)
            if cached is None:
                ids = list(node.children)
                if node.choice is not None and end not in node.children:
                    ids.append(end)
                cached = node.cache[end] = torch.tensor(sorted(ids), device=device)
            return cached
        ids = [t for t, c in node.children.items() if 1 + c.need <= left]
        if node.choice is not None and left >= 1 and end not in node.children:
            ids.append(end)
        return torch.tensor(sorted(ids), dtype=torch.long, device=device)

    def advance(self, node: TrieNode, token: int, end: int) -> TrieNode | int:
        """The node after ``token``, or ``END`` when it completed ``node``'s choice."""
        child = node.children.get(token)
        if child is not None:
            return child
        if token == end and node.choice is not None:
            return END
        raise ValueError(f"token {token} is not allowed by the choices here")


class TrieCache:
    """Tries built once per distinct choice list, the few most recent kept (LRU: a trie of
    10,000 titles holds about 64,000 nodes). The token ids of each choice string are kept
    too (up to ``strings``), so a new list drawn from the same library (a shortlist for
    another cursor position) tokenises only the strings not seen before."""

    def __init__(
        self,
        encode: Callable[[list[str]], list[list[int]]],
        size: int = 4,
        strings: int = 50_000,
    ) -> None:
        self._encode = encode
        self._size = size
        self._strings = strings
        self._tries: OrderedDict[tuple[str, ...], ChoiceTrie] = OrderedDict()
        self._ids: OrderedDict[str, list[int]] = OrderedDict()
        self._lock = threading.Lock()
        self.builds = 0
        self.encoded = 0  # strings tokenised so far

    def get(self, choices: Sequence[str]) -> ChoiceTrie:
        key = tuple(choices)
        with self._lock:
            trie = self._tries.get(key)
            if trie is not None:
                self._tries.move_to_end(key)
                return trie
            ids = self._token_ids(key)
            collecting = gc.isenabled()
            gc.disable()  # tens of thousands of new nodes: no cycle collection meanwhile
            try:
                trie = ChoiceTrie(key, ids)
            finally:
                if collecting:
                    gc.enable()
            self.builds += 1
            self._tries[key] = trie
            while len(self._tries) > self._size:
                self._tries.popitem(last=False)
            return trie

    def _token_ids(self, choices: tuple[str, ...]) -> list[list[int]]:
        new = list(dict.fromkeys(c for c in choices if c not in self._ids))
        if new:
            for choice, ids in zip(new, self._encode(new), strict=True):
                self._ids[choice] = ids
            self.encoded += len(new)
        out = []
        for choice in choices:
            self._ids.move_to_end(choice)
            out.append(self._ids[choice])
        while len(self._ids) > max(self._strings, len(choices)):
            self._ids.popitem(last=False)
        return out
