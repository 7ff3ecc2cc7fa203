"""JSON Lines: one line to a `Parsed` row; numbers are accepted for text fields."""

from __future__ import annotations

import json
from typing import Any

import orjson

from worker.input.parsed import COMMENT_KEYS, MERCHANT_KEYS, REFERENCE_KEYS, Parsed, error_row, norm


def _scalar(obj: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, str | None]:
    """The first present key's value as text; numbers allowed, other types are an error."""
    for key in keys:
        if key in obj:
            value = obj[key]
            if value is None:
                return None, None
            if isinstance(value, bool):
                return None, f"{key} must be a string, got a boolean"
            if isinstance(value, str):
                return value, None
            if isinstance(value, int):
                return str(value), None
            if isinstance(value, float):  # 1.5, 1e3, or a whole number past 64 bits
                return str(value), (  # shown in the invalid row (not --merchant's default)
                    f"{key} must be a string or a whole number; {value!r} has a fraction or "
                    "an exponent, or is too big to read exactly: write it as a string"
                )
            return None, f"{key} must be a string, got {type(value).__name__}"
    return None, None


def parse_json_object(number: int, data: bytes) -> Parsed:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        obj = _not_utf8(data)
        if obj is None:
            # orjson counts lines and chars inside the one line it saw: only the column helps.
            return error_row(number, f"cannot parse JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(obj, dict):
        return error_row(number, "line is not a JSON object")
    named = {norm(k): v for k, v in obj.items()}
    twice = _named_twice(data, obj, named)
    if twice is not None:
        return error_row(number, f"names {twice!r} twice: which one to send is a guess")
    reference, ref_err = _scalar(named, REFERENCE_KEYS)
    merchant, merchant_err = _scalar(named, MERCHANT_KEYS)
    comment, comment_err = _scalar(named, COMMENT_KEYS)
    used = {_first(named, REFERENCE_KEYS), _first(named, MERCHANT_KEYS)}
    return Parsed(
        number,
        reference,
        merchant,
        comment,
        error=ref_err or merchant_err or comment_err,
        extra=tuple((k, v) for k, v in obj.items() if norm(k) not in used),
    )


def _not_utf8(data: bytes) -> Any:
    """A line that is JSON but for bytes that are not UTF-8, read as a CSV line is: such
    a byte in an ignored key is echoed (as U+FFFD), in the reference, merchant or
    comment it makes the row invalid (`validate`). None: not JSON either way."""
    try:
        data.decode("utf-8")
        return None  # valid UTF-8: orjson's refusal stands
    except UnicodeDecodeError:
        pass
    try:  # as orjson reads it but for the bytes: no NaN, no Infinity, no deep nesting,
        # and a whole number past 64 bits is a float (made invalid), as orjson gives it
        text = data.decode("utf-8", "surrogateescape")
        return json.loads(text, parse_constant=_refuse, parse_int=_int64)
    except (ValueError, RecursionError):
        return None


def _int64(text: str) -> int | float:
    value = int(text)
    return value if -(2**63) <= value < 2**64 else float(value)


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


_KNOWN = frozenset((*REFERENCE_KEYS, *MERCHANT_KEYS, *COMMENT_KEYS))


#: A known key's spellings as they stand in a line, quoted (a second one may be a
#: second key); kept for the first few spellings met.
_QUOTED: dict[str, bytes] = {}


def _named_twice(data: bytes, obj: dict[str, Any], named: dict[str, Any]) -> str | None:
    """A known key given twice (`{"payment_reference": "A", "payment_reference": "B"}`,
    or two spellings of it): JSON readers keep the last, a CSV reader the first. The
    usual row costs one count of `":` (a key written `"key" :` is not seen)."""
    if len(named) < len(obj):  # two keys that normalize alike (case, spaces)
        seen: set[str] = set()
        for key in obj:
            if (n := norm(key)) in seen and n in _KNOWN:
                return key
            seen.add(n)
    if data.count(b'":') <= len(obj):  # no more keys in the text than in the object
        return None
    for key in obj:  # some `":` is a second key, or inside a value
        if norm(key) not in _KNOWN:
            continue
        quoted = _QUOTED.get(key)
        if quoted is None:  # as written, `Payment Reference` too
            quoted = orjson.dumps(key)
            if len(_QUOTED) < 64:  # a file uses a few spellings
                _QUOTED[key] = quoted
        if data.count(quoted) > 1:
            text = data.decode("utf-8", "surrogateescape")  # as read (see `_not_utf8`)
            try:  # rare: the key's text recurs in the line
                pairs = json.loads(text, object_pairs_hook=list)
            except (ValueError, RecursionError):  # orjson read it: nothing more to learn
                return None
            keys = [norm(k) for k, _ in pairs]
            if keys.count(norm(key)) > 1:
                return key
    return None


def _first(named: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in named), None)
