"""JSON Lines: one line to a `Parsed` row; numbers are accepted for text fields."""

from __future__ import annotations

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
                return None, (
                    f"{key} must be a string or a whole number; {value!r} has a fraction or "
                    "an exponent, or is too big to read exactly: write it as a string"
                )
            return None, f"{key} must be a string, got {type(value).__name__}"
    return None, None


def parse_json_object(number: int, data: bytes) -> Parsed:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        # orjson counts lines and chars inside the one line it saw: only the column helps.
        return error_row(number, f"cannot parse JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(obj, dict):
        return error_row(number, "line is not a JSON object")
    named = {norm(k): v for k, v in obj.items()}
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


def _first(named: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in named), None)
