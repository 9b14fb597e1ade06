"""Token ids to text, incrementally, with stop strings that may span tokens."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase


class TextStream:
    """Decodes a growing list of generated ids and hands out text that is safe to show.

    Text that could be the start of a stop string is held back until the next token settles
    it; a stop string ends the stream and is not part of the text (as in OpenAI's API).
    Incomplete UTF-8 (a byte-level token that splits a character) is held back too.
    As vLLM's detokenizer, no stop string ends the first ``min_tokens`` tokens (a blank line
    GALACTICA writes before an answer); later ones are searched from the end of that text.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        stops: list[str],
        skip_special_tokens: bool,
        min_tokens: int = 0,
    ) -> None:
        self._tokenizer = tokenizer
        self._stops = [s for s in stops if s]
        self._skip = skip_special_tokens
        self._ids: list[int] = []
        self._sent = 0
        self.text = ""
        self.stopped = False
        self._min_tokens = min_tokens
        self._lead_end = 0  # the text's length after the first min_tokens tokens

    def push(self, token_id: int) -> str:
        """Add one token; return the newly safe text."""
        self._ids.append(token_id)
        decoded = self._tokenizer.decode(
            self._ids, skip_special_tokens=self._skip, clean_up_tokenization_spaces=False
        )
        if decoded.endswith("\ufffd"):
            return ""
        self.text = decoded
        if len(self._ids) <= self._min_tokens:
            self._lead_end = len(decoded)
            return self._take(len(decoded))
        for stop in self._stops:
            start = max(0, self._sent - len(stop), self._lead_end - len(stop) + 1)
            at = decoded.find(stop, start)
            if at != -1 and (not self.stopped or at < len(self.text)):
                self.text = decoded[:at]
                self.stopped = True
        if self.stopped:
            return self._take(len(self.text))
        return self._take(len(decoded) - self._held_back(decoded))

    def flush(self) -> str:
        """At the end of generation: everything not yet handed out."""
        return self._take(len(self.text))

    def _take(self, end: int) -> str:
        if end <= self._sent:
            return ""
        piece = self.text[self._sent : end]
        self._sent = end
        return piece

    def _held_back(self, text: str) -> int:
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if stop.startswith(text[-size:]):
                    longest = size
                    break
        return longest
