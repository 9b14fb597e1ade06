"""LaTeX in BibTeX fields to plain Unicode text, fast.

:class:`LatexFieldDecoding` is bibtexparser's :class:`LatexDecodingMiddleware` restricted to
the fields we read, with a fast path: accents (``{\\"o}``, ``\\'{e}``, ``\\c c``), the usual
letters (``\\ss``, ``\\o``, ``\\aa``), escapes (``\\&``), dashes and ``~`` are decoded from a
table and protective braces (``{{Title}}``, ``{GPU}s``) dropped; anything else with a macro or
math (``\\emph{x}``, ``$\\alpha$``) goes through the middleware's own decoder (pylatexenc),
which is correct but about 1 ms a string: too slow for every field of a 10,000-entry file.
"""

from __future__ import annotations

import re
import unicodedata

from bibtexparser.library import Library as BibLibrary
from bibtexparser.middlewares import LatexDecodingMiddleware
from bibtexparser.model import Block, Entry

__all__ = ["RAW_FIELDS", "LatexFieldDecoding", "decode_latex"]

#: parser metadata key of an entry's fields before decoding
RAW_FIELDS = "galactica_raw_fields"

#: fields decoded (the rest stay as written: abstracts, files, keywords are not used)
DECODED_FIELDS = frozenset(
    {
        "title",
        "booktitle",
        "journal",
        "journaltitle",
        "shorttitle",
        "subtitle",
        "publisher",
        "series",
        "institution",
        "school",
        "organization",
        "address",
        "location",
        "howpublished",
        "edition",
        "note",
        "eventtitle",
        "maintitle",
        "pages",
    }
)

_COMBINING = {
    "'": "\u0301",
    "`": "\u0300",
    "^": "\u0302",
    '"': "\u0308",
    "~": "\u0303",
    "=": "\u0304",
    ".": "\u0307",
    "u": "\u0306",
    "v": "\u030c",
    "H": "\u030b",
    "c": "\u0327",
    "k": "\u0328",
    "r": "\u030a",
    "d": "\u0323",
    "b": "\u0331",
}
_LETTERS = {
    "ss": "ß",
    "ae": "æ",
    "AE": "Æ",
    "oe": "œ",
    "OE": "Œ",
    "aa": "å",
    "AA": "Å",
    "o": "ø",
    "O": "Ø",
    "l": "ł",
    "L": "Ł",
    "i": "ı",
    "j": "ȷ",
}
_ESCAPES = {"&": "&", "%": "%", "$": "$", "_": "_", "#": "#", "{": "\x00", "}": "\x01"}

_BASE = r"(\\[ij](?![A-Za-z])|[A-Za-z])"
# \'e  \'{e}  {\'e}  \'{\i}
_SYMBOL_ACCENT = re.compile(r"\{?\\([`'^\"~=.])\s*(?:\{\s*" + _BASE + r"\s*\}|" + _BASE + r")\}?")
# \c{c}  \c c  {\v s}
_LETTER_ACCENT = re.compile(
    r"\{?\\([uvHckrdb])(?:\s*\{\s*" + _BASE + r"\s*\}|\s+" + _BASE + r")\}?"
)
_LETTER = re.compile(r"\{?\\(ss|ae|AE|oe|OE|aa|AA|o|O|l|L|i|j)(?![A-Za-z])(?:\{\}|\s(?=\w))?\}?")
_ESCAPE = re.compile(r"\\([&%$_#{}])")
_SPACES = re.compile(r"\s+")
_PLAIN = re.compile(r"[^\\{}$~\-`']*")


def _accent(mark: str, base: str) -> str:
    letter = _LETTERS[base[1:]] if base.startswith("\\") else base
    if letter in ("ı", "ȷ"):
        letter = "i" if letter == "ı" else "j"
    return unicodedata.normalize("NFC", letter + _COMBINING[mark])


def _fast(text: str) -> str | None:
    """The decoded text, or None when something outside the table is left (macro, math)."""
    text = _SYMBOL_ACCENT.sub(lambda m: _accent(m.group(1), m.group(2) or m.group(3)), text)
    text = _LETTER_ACCENT.sub(lambda m: _accent(m.group(1), m.group(2) or m.group(3)), text)
    text = _LETTER.sub(lambda m: _LETTERS[m.group(1)], text)
    text = _ESCAPE.sub(lambda m: _ESCAPES[m.group(1)], text)
    if "\\" in text or "$" in text:
        return None
    text = text.replace("{", "").replace("}", "").replace("~", " ")
    text = text.replace("---", "—").replace("--", "–").replace("``", "“").replace("''", "”")
    return text.replace("\x00", "{").replace("\x01", "}")


class LatexFieldDecoding(LatexDecodingMiddleware):
    """bibtexparser's LaTeX decoding for the fields in :data:`DECODED_FIELDS`, fast path
    first. A string the decoder cannot read is kept as written (never an error block)."""

    def __init__(self) -> None:
        super().__init__(allow_inplace_modification=True, keep_braced_groups=False)

    def decode(self, text: str) -> str:
        """One string to plain text (whitespace collapsed)."""
        if _PLAIN.fullmatch(text):
            return _SPACES.sub(" ", text).strip()
        fast = _fast(text)
        if fast is None:
            fast, _error = self._transform_python_value_string(text)
        return _SPACES.sub(" ", unicodedata.normalize("NFC", fast)).strip()

    def transform_entry(self, entry: Entry, library: BibLibrary) -> Block:
        # the values as written (strings resolved, outer braces removed), kept for export
        entry.set_parser_metadata(RAW_FIELDS, [(f.key, f.value) for f in entry.fields])
        for item in entry.fields:
            if item.key.lower() in DECODED_FIELDS and isinstance(item.value, str):
                enclosing = item.enclosing
                item.value = self.decode(item.value)
                item.enclosing = enclosing
        return entry


_DEFAULT: LatexFieldDecoding | None = None


def decode_latex(text: str) -> str:
    """Decode one string (a name part, a title) with the shared decoder."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = LatexFieldDecoding()
    return _DEFAULT.decode(text)
