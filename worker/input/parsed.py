"""Parsed: a row before validation, the column names it is read from, text helpers.

Shared by the CSV (`rows`) and JSON Lines (`jsonl`) parsers and by `validate`.
"""

from __future__ import annotations

from dataclasses import dataclass

REFERENCE_KEYS = ("payment_reference", "reference", "payment")
MERCHANT_KEYS = ("merchant_number", "merchant")
COMMENT_KEYS = ("comment",)


@dataclass(slots=True)  # not frozen: frozen costs 0.6 us a row here (measured), per row
class Parsed:
    """A row before validation: raw fields, or the reason it could not be parsed."""

    line: int
    reference: str | None
    merchant: str | None
    comment: str | None
    error: str | None = None
    #: The row's other columns as read (name, value), for the report to repeat.
    extra: tuple[tuple[str, object], ...] = ()


def has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def printable(text: str | None) -> str:
    """Text safe to write anywhere: undecodable bytes shown as U+FFFD."""
    if text is None:
        return ""
    if not has_surrogates(text):
        return text
    try:  # the bytes the input held, decoded again: each bad byte becomes U+FFFD
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate that stands for no byte (JSON's "\ud800")
        return text.encode("utf-8", "replace").decode("utf-8")


#: How much input an error message quotes: enough to find the line, never a screenful.
EXCERPT_LIMIT = 80
_ESCAPES = {"\\": "\\\\", "'": "\\'", "\t": "\\t", "\r": "\\r", "\n": "\\n"}


def _escape(char: str) -> str:
    code = ord(char)
    if char in _ESCAPES:
        return _ESCAPES[char]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape): show it
        return f"\\x{code - 0xDC00:02x}"
    if char.isprintable():
        return char
    return ascii(char)[1:-1]  # \\x1b, \\u202e: as Python writes it


def excerpt(text: str, limit: int = EXCERPT_LIMIT) -> str:
    """Input quoted for an error message: single-quoted, safe on a terminal, ~`limit` long.

    Control and format characters are escaped as Python writes them (`\\x1b`, `\\u202e`)
    and an undecodable byte as the byte (`\\xff`), so no input can move the cursor,
    recolour or flood the operator's terminal; a longer text ends in `...`.
    """
    out: list[str] = []
    size = 0
    for char in text:
        shown = _escape(char)
        size += len(shown)
        if size > limit:
            return "'" + "".join(out) + "'..."
        out.append(shown)
    return "'" + "".join(out) + "'"


def norm(name: str) -> str:
    """A column name or JSON key as matched: any case, spaces around it or a BOM before
    it, and a space or hyphen for `_` (`Merchant Number` is `merchant_number`: unmatched,
    its rows took `--merchant`'s default merchant)."""
    return name.strip().lstrip("\ufeff").strip().lower().replace(" ", "_").replace("-", "_")


def error_row(number: int, reason: str) -> Parsed:
    return Parsed(number, None, None, None, error=reason)
