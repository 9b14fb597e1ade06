"""Character-level sequence spans: SMILES, isomeric SMILES, DNA and protein sequences.

GALACTICA reads the text between ``[START_SMILES]`` and ``[END_SMILES]`` (and the
``I_SMILES``, ``DNA`` and ``AMINO`` pairs) one character per token. Its tokenizer splits on
:data:`SPLIT_MARKER` and drops it, so galai puts the marker before every character of a span.

The escaping here is one left-to-right scan with ``str.find`` (linear in the text: issue 8.2
found the old regular expression quadratic, 15 s on ``'[START_DNA]' * 8000``) and gives the
same results as that expression did.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The tokenizer splits on this marker and drops it (galai's ``SPLIT_MARKER``).
SPLIT_MARKER = "SPL1T-TH1S-Pl3A5E"
SPAN_KINDS = ("I_SMILES", "SMILES", "DNA", "AMINO")
START = {kind: f"[START_{kind}]" for kind in SPAN_KINDS}
END = {kind: f"[END_{kind}]" for kind in SPAN_KINDS}
_PREFIX = "[START_"


@dataclass
class _Scan:
    """The text being escaped, with a count of the characters ``str.find`` looked at
    (``work``): tests bound it by a multiple of the text's length."""

    text: str
    work: int = 0

    def find(self, needle: str, start: int) -> int:
        at = self.text.find(needle, start)
        self.work += (len(self.text) if at == -1 else at + len(needle)) - start
        return at

    def rfind(self, needle: str) -> int:
        at = self.text.rfind(needle)
        self.work += len(self.text) - max(at, 0)
        return at


def split_chars(sequence: str) -> str:
    """Every character of ``sequence`` preceded by the marker (old markers removed first)."""
    return "".join(SPLIT_MARKER + ch for ch in sequence.replace(SPLIT_MARKER, ""))


def _kind_at(text: str, at: int) -> str | None:
    """The span kind whose start marker begins at ``at`` (which holds ``[START_``)."""
    for kind in SPAN_KINDS:
        if text.startswith(START[kind], at):
            return kind
    return None


def _escape_closed(scan: _Scan) -> str:
    """Split every closed span, as galai's ``CUSTOM_SEQ_RE`` does: the leftmost start marker
    that has an end marker of its kind after it, up to the nearest such end marker."""
    text = scan.text
    # the end markers of each kind, in order, found once (linear per kind)
    ends: dict[str, list[int]] = {}
    for kind in SPAN_KINDS:
        found, at = [], scan.find(END[kind], 0)
        while at != -1:
            found.append(at)
            at = scan.find(END[kind], at + len(END[kind]))
        ends[kind] = found
    next_end = dict.fromkeys(SPAN_KINDS, 0)  # index into ends[kind], only ever moves forward
    out: list[str] = []
    copied = pos = 0
    while True:
        at = scan.find(_PREFIX, pos)
        if at == -1:
            break
        kind = _kind_at(text, at)
        if kind is None:
            pos = at + 1
            continue
        body = at + len(START[kind])
        positions, i = ends[kind], next_end[kind]
        while i < len(positions) and positions[i] < body:
            i += 1
        next_end[kind] = i
        if i == len(positions):  # unclosed: so is every later span of this kind
            pos = at + 1
            continue
        end = positions[i]
        out += [text[copied:body], split_chars(text[body:end]), SPLIT_MARKER]
        copied = pos = end  # the end marker is copied with the text after it
    out.append(text[copied:])
    return "".join(out)


def _escape_open_at_end(scan: _Scan) -> str:
    """Split an open span that runs to the end of the text: the text's last span marker is a
    start marker. Left alone when its content starts with the marker already (escaped
    before), so a prompt's own suffix (``[START_REF]``, ``Answer:``) after the user's escaped
    text is never split again."""
    text = scan.text
    last, last_kind = -1, None
    for kind in SPAN_KINDS:
        for marker, is_start in ((START[kind], True), (END[kind], False)):
            at = scan.rfind(marker)
            if at > last:
                last, last_kind = at, (kind if is_start else None)
    if last_kind is None:
        return text
    body = last + len(START[last_kind])
    if text.startswith(SPLIT_MARKER, body):
        return text
    return text[:body] + split_chars(text[body:])


def escape_sequences(text: str) -> str:
    """Put the split marker between the characters of SMILES, DNA and protein spans.

    Closed spans are escaped as galai does; an open span at the end of the text (someone is
    still typing a sequence) is escaped up to the end, so its continuation is per character too.
    Idempotent: text escaped already (a task's prompt, on its way to the tokenizer) is unchanged.
    Linear time: one scan with ``str.find``.
    """
    return escape_with_work(text)[0]


def escape_text(text: str) -> str:
    """The user's text escaped for a prompt that goes on after it (a task's suffix).

    As :func:`escape_sequences`, and an empty open span at the end (the text ends in
    ``[START_DNA]``) gets a split marker after its start, which the tokenizer drops: then the
    span counts as escaped, and escaping the whole prompt again (our engine does, on its way
    to the tokenizer) never splits the suffix into characters.
    """
    escaped = escape_sequences(text)
    if any(escaped.endswith(START[kind]) for kind in SPAN_KINDS):
        escaped += SPLIT_MARKER
    return escaped


def escape_with_work(text: str) -> tuple[str, int]:
    """:func:`escape_sequences` and the characters its scans looked at (for tests)."""
    if "[" not in text:
        return text, len(text)
    first = _Scan(text)
    closed = _escape_closed(first)
    second = _Scan(closed)
    return _escape_open_at_end(second), first.work + second.work


def unescape(text: str) -> str:
    """``text`` without split markers (what the model's output looks like to a reader)."""
    return text.replace(SPLIT_MARKER, "")
