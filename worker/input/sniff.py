"""Sniff: what an input's first line tells before any request is sent.

`open_input` reads ahead only as far as `first_look` needs (the CSV header, or the
first non-blank JSON line), so on a pipe it never waits for more than that. From
those bytes this module decides the format and refuses, with a hint (exit 2), an input
that is clearly no text at all or clearly the other format: reporting each of its
lines `invalid` would send nothing useful and hide the one-line fix.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

import orjson

from worker.errors import InputError
from worker.input.parsed import excerpt

FORMATS = ("csv", "jsonl")

#: Starts of files that are not UTF-8 text, and what to do about each. Only the hint
#: depends on this table: such a file is binary by the NUL bytes of its first line too.
_MAGIC = (
    (codecs.BOM_UTF32_LE, "it is UTF-32 text: save it as UTF-8"),
    (codecs.BOM_UTF32_BE, "it is UTF-32 text: save it as UTF-8"),
    (codecs.BOM_UTF16_LE, "it is UTF-16 text: save it as UTF-8"),
    (codecs.BOM_UTF16_BE, "it is UTF-16 text: save it as UTF-8"),
    (b"PK\x03\x04", "a ZIP archive, or an Excel workbook: export it as CSV"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook: export it as CSV"),
    (b"\xfd7zXZ\x00", "xz data: only gzip is read, decompress it first"),
    (b"\x28\xb5\x2f\xfd", "zstd data: only gzip is read, decompress it first"),
)


def format_by_name(name: str, explicit: str | None) -> str | None:
    """The format by `--input-format`, else by the name; None when the content decides."""
    if explicit:
        if explicit not in FORMATS:
            raise InputError(f"--input-format must be csv or jsonl, got {explicit!r}")
        return explicit
    lowered = name.lower().removesuffix(".gz")
    if lowered.endswith(".csv"):
        return "csv"
    if lowered.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    return None


def sniff_format(plain: bytes) -> str:
    """The format by content: JSON Lines when the first non-blank byte opens an object."""
    return "jsonl" if plain.removeprefix(codecs.BOM_UTF8).lstrip().startswith(b"{") else "csv"


@dataclass(frozen=True, slots=True)
class Look:
    """The line the checks need: its physical number, its bytes so far (no LF, no BOM)."""

    number: int
    line: bytes
    complete: bool


#: The first line Excel writes to name a CSV's separator (`sep=;`); the header follows.
EXCEL_SEP = re.compile(rb"sep=([^\r\n])\r?")


def excel_separator(plain: bytes) -> str | None:
    """The separator a complete `sep=X` first line names, else None."""
    text = plain.removeprefix(codecs.BOM_UTF8)
    end = text.find(b"\n")
    match = EXCEL_SEP.fullmatch(text[:end]) if end >= 0 else None
    return match.group(1).decode("latin-1") if match else None


def first_look(plain: bytes, fmt: str | None, eof: bool) -> Look:
    """The line to check: line 1 for CSV (its header; line 2 after Excel's `sep=X`), the
    first non-blank line for JSON Lines; with the format still unknown, the first
    non-blank line if it opens with `{` (JSON Lines by `sniff_format`), else line 1 (or
    2). `eof`: no more bytes will come."""
    text = plain.removeprefix(codecs.BOM_UTF8)
    number, start = 1, 0
    if fmt != "csv":
        while (end := text.find(b"\n", start)) >= 0 and not text[start:end].strip():
            number, start = number + 1, end + 1
        if fmt is None:
            head = text[start:].lstrip()
            if not head:  # only blank so far: the first byte that decides is still to come
                return Look(number, text[start:], eof)
            if not head.startswith(b"{"):
                number, start = 1, 0
    if start == 0 and fmt != "jsonl" and excel_separator(text) is not None:
        number, start = 2, text.find(b"\n") + 1
    end = text.find(b"\n", start)
    if end < 0:
        return Look(number, text[start:], eof)
    return Look(number, text[start:end], True)


def refuse_binary(name: str, plain: bytes, look: Look) -> None:
    """A file that is clearly no text (exit 2) rather than one `invalid` row per line."""
    hint = next((what for magic, what in _MAGIC if plain.startswith(magic)), None)
    if hint is None and not _binary(look.line):
        return
    raise InputError(f"{name} looks binary, not CSV or JSON Lines" + (f" ({hint})" if hint else ""))


def _binary(line: bytes) -> bool:
    """A NUL byte (never in text), or not UTF-8 and over a third unprintable: a file
    in Latin-1 or cp1252 has a few undecodable letters, not a third of its line."""
    if b"\x00" in line:
        return True
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        text = line.decode("utf-8", "surrogateescape")
        odd = sum(1 for c in text if not c.isprintable() and c not in "\t\r")
        return odd * 3 > len(text)
    return False


def _parses(line: bytes) -> bool:
    """Whether a line is JSON (a CR between its tokens is whitespace there)."""
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def refuse_not_json(name: str, look: Look) -> None:
    """JSON Lines whose first non-blank line is not JSON, nor even opens an object:
    another format (CSV, most likely), not a file of invalid rows."""
    line = look.line.strip()
    if b"\r" in line and not _parses(line):  # a CR-only file is one long first line
        raise InputError(
            f"{name}: line {look.number} holds a carriage return (\\r) that does not end "
            "it: is the file saved with old Mac line ends (CR alone)? Convert it "
            "(tr '\\r' '\\n' < in > out) and run again"
        )
    if not look.complete or line.startswith(b"{"):
        return  # an overlong line, or an object with a typo: that row is `invalid`
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        shown = excerpt(line.decode("utf-8", "surrogateescape"))
        raise InputError(
            f"{name}: line {look.number} is not JSON ({shown}): is this CSV? use --input-format csv"
        ) from None
