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
    return text.encode("utf-8", "replace").decode("utf-8") if has_surrogates(text) else text


def norm(name: str) -> str:
    return name.strip().lstrip("\ufeff").strip().lower()


def error_row(number: int, reason: str) -> Parsed:
    return Parsed(number, None, None, None, error=reason)
