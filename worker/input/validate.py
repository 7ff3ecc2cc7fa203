"""Validate: the README's row rules, which decide whether a parsed row may be sent.

A `Rejected` row is reported `invalid` and never sent; it echoes at most
`ECHO_LIMIT` characters of its reference and merchant, so no input can make the
report unreadable.
"""

from __future__ import annotations

import re
import unicodedata

from worker.errors import UsageError
from worker.input.parsed import Parsed, excerpt, has_surrogates, printable
from worker.model import Outcome, Rejected, Row
from worker.settings import MAX_COMMENT, MAX_MERCHANT, MAX_REFERENCE

#: How much of an invalid row's reference or merchant the report echoes.
ECHO_LIMIT = 200
#: What is stripped from around a reference or merchant: spaces (any width) and tabs.
#: Not every character `str.strip` takes: a control character at a cell's edge (VT,
#: FF, the separators U+001C-U+001F, NEL) would otherwise go unseen, and `A1\x1e`
#: would cancel `A1`. Such a cell is invalid, as it is with the character inside.
#: (Unicode's space separators, category Zs, listed: a test checks the list.)
BLANK = " \t\u00a0\u1680\u202f\u205f\u3000" + "".join(map(chr, range(0x2000, 0x200B)))
#: Categories a reference or merchant may not hold: controls (C0 and C1), invisible
#: formatting characters (zero-width space, BOM, direction marks), line and paragraph
#: separators. None is typed in a reference; each is a copy-paste or export accident,
#: and a cancel sent with one in it goes to another payment (or none).
_FORBIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp"})
#: Printable ASCII only: no control character and nothing undecodable. Nearly every
#: reference and merchant number is that, and one match settles both rules at once.
_PLAIN = re.compile(r"[\x20-\x7e]+")


def _echo(text: str) -> str:
    """What an invalid row's report echoes of a cell: printable, and at most ECHO_LIMIT."""
    return printable(text[:ECHO_LIMIT])


def _forbidden(text: str) -> str | None:
    """The first character of `text` a reference or merchant may not hold, if any."""
    for char in text:
        if unicodedata.category(char) in _FORBIDDEN:
            return char
    return None


def validate(parsed: Parsed, default_merchant: str | None) -> Row | Rejected:
    """Apply the README's row rules; `Rejected` rows are reported and never sent."""
    reference = (parsed.reference or "").strip(BLANK)
    merchant = (parsed.merchant or "").strip(BLANK) or (default_merchant or "").strip(BLANK)
    comment = parsed.comment if parsed.comment and not parsed.comment.isspace() else None
    if (  # the common row, every rule passed at once; `_checked` says why a row fails
        parsed.error is None
        and 0 < len(reference) <= MAX_REFERENCE
        and 0 < len(merchant) <= MAX_MERCHANT
        and _PLAIN.fullmatch(reference)
        and _PLAIN.fullmatch(merchant)
        and (comment is None or (len(comment) <= MAX_COMMENT and comment.isascii()))
    ):
        return Row(parsed.line, merchant, reference, comment, parsed.extra)
    return _checked(parsed, reference, merchant, comment)


def _checked(parsed: Parsed, reference: str, merchant: str, comment: str | None) -> Row | Rejected:
    """The rules one by one, in the README's order: the first that fails is the reason."""

    def reject(reason: str) -> Rejected:
        return Rejected(
            parsed.line, _echo(merchant), _echo(reference), Outcome.INVALID, reason, parsed.extra
        )

    if parsed.error:
        return reject(parsed.error)
    if has_surrogates(reference) or has_surrogates(merchant) or has_surrogates(comment or ""):
        return reject("row is not valid UTF-8")
    if not reference:
        return reject("empty payment reference")
    if len(reference) > MAX_REFERENCE:
        return reject(
            f"payment reference is {len(reference)} characters; at most {MAX_REFERENCE}"
            + (f" (the report shows the first {ECHO_LIMIT})" if len(reference) > ECHO_LIMIT else "")
        )
    if len(merchant) > MAX_MERCHANT:
        return reject(f"merchant number is {len(merchant)} characters; at most {MAX_MERCHANT}")
    if (char := _forbidden(reference) or _forbidden(merchant)) is not None:
        kind = "an invisible formatting" if unicodedata.category(char) == "Cf" else "a control"
        return reject(
            "payment reference or merchant number holds a line break or "
            f"{kind} character (U+{ord(char):04X})"
        )
    if comment is not None and len(comment) > MAX_COMMENT:
        return reject(f"comment is {len(comment)} characters; at most {MAX_COMMENT}")
    if not merchant:
        return reject("no merchant number: add a merchant_number column or use --merchant")
    return Row(parsed.line, merchant, reference, comment, parsed.extra)


def check_default_merchant(merchant: str | None) -> None:
    """`--merchant` by the rules of a row's merchant cell (UsageError, exit 2): one a row
    could not hold (a control character, too long) made every row naming none `invalid`."""
    if merchant is not None:
        checked = validate(Parsed(0, "reference", None, None), merchant)
        if isinstance(checked, Rejected):
            raise UsageError(
                f"--merchant {excerpt(merchant)} is not a merchant number: {checked.detail}"
            )
