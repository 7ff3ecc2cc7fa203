"""Header: a CSV's first line to `Columns` (where the known columns are, the separator).

Kept apart from `rows` because it runs once, before any request, and owns every
message about a header that cannot be used (exit 2); `rows` only splits the lines
after it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

from worker.errors import InputError
from worker.input.parsed import COMMENT_KEYS, MERCHANT_KEYS, REFERENCE_KEYS, excerpt, norm

#: Separators tried, in order, when the header does not name a reference column.
DELIMITERS = (",", ";", "\t", "|")


@dataclass(frozen=True, slots=True)
class Columns:
    """Where a CSV's fields are: positions of the known columns, the separator."""

    names: tuple[str, ...]
    reference: int
    merchant: int | None
    comment: int | None
    delimiter: str = ","
    header_line: int = 1  # 2 after Excel's `sep=X` line

    @property
    def others(self) -> tuple[int, ...]:
        """The columns a report repeats: all but the reference and the merchant."""
        return tuple(i for i in range(len(self.names)) if i not in (self.reference, self.merchant))


def columns_for(header: list[str], delimiter: str, number: int) -> Columns | None:
    names = [norm(h) for h in header]
    ref = next((names.index(k) for k in REFERENCE_KEYS if k in names), None)
    if ref is None:
        return None
    merchant = next((names.index(k) for k in MERCHANT_KEYS if k in names), None)
    comment = next((names.index(k) for k in COMMENT_KEYS if k in names), None)
    return Columns(tuple(h.strip() for h in header), ref, merchant, comment, delimiter, number)


def delimiter_option(value: str | None) -> str | None:
    """`--delimiter` as given, checked: one character, or `tab` (also `\\t`), since a
    real tab is awkward to type in a shell. None: detect it from the header."""
    if value is None:
        return None
    if value in ("tab", "\\t"):
        return "\t"
    if len(value) != 1 or value in '"\r\n':
        raise InputError(
            "--delimiter must be one character (or tab), not a quote or a line break; "
            f"got {excerpt(value)}"
        )
    return value


def parse_header(line: str, name: str, delimiter: str | None = None, number: int = 1) -> Columns:
    """The CSV header: find the reference column, and the separator when it is not `,`.

    `delimiter` (from `--delimiter`, or Excel's `sep=X` line before the header, which is
    then line `number` 2) is the only separator tried; without it each of `DELIMITERS`
    is, so the first that makes sense of the header wins.
    """
    line = line.removeprefix("\ufeff").rstrip("\r")
    if not line.strip():
        raise InputError(f"{name}: line {number} is blank: a CSV input needs a header row")
    if "\r" in line:  # only LF ends a line: a CR-only file is one long "header"
        raise InputError(
            f"{name}: the header (line {number}) holds a carriage return (\\r) that does "
            "not end it: is the file saved with old Mac line ends (CR alone)? Convert it "
            "(tr '\\r' '\\n' < in > out) and run again"
        )
    errors: dict[str, csv.Error] = {}
    for candidate in (delimiter,) if delimiter else DELIMITERS:
        try:
            header = next(csv.reader([line], delimiter=candidate, strict=True))
        except csv.Error as exc:
            # `"a";"b"` is broken CSV with `,` and fine with `;`: try the others first.
            errors[candidate] = exc
            continue
        columns = columns_for(header, candidate, number)
        if columns is not None:
            _check_unique(header, columns, name)
            return columns
    _refuse_json(line, name)
    looks = _looks_separated(line)
    error = errors.get(delimiter or looks or ",")
    if error is not None:
        raise InputError(f"{name}: cannot read the CSV header (line {number}): {error}")
    raise InputError(
        f"{name}: no reference column; the header (line {number}) needs one of "
        f"{', '.join(REFERENCE_KEYS)}; found {excerpt(line)}{_separator_hint(delimiter, looks)}"
    )


def _check_unique(header: list[str], columns: Columns, name: str) -> None:
    """A reference, merchant or comment column named twice: which one holds the value
    to send is a guess (the first was taken, silently). Named once each: exit 2."""
    names = [norm(h) for h in header]
    for index in (columns.reference, columns.merchant, columns.comment):
        if index is None:
            continue
        where = [i + 1 for i, n in enumerate(names) if n == names[index]]
        if len(where) > 1:
            raise InputError(
                f"{name}: the header (line {columns.header_line}) names "
                f"{header[index].strip()!r} twice (columns {where[0]} and {where[1]}): "
                "rename or remove one, so that it is clear which to send"
            )


def _looks_separated(line: str) -> str | None:
    """The separator the header looks like: the most frequent of `DELIMITERS` in it."""
    counts = {d: line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=counts.__getitem__)  # the first of equals, `,` before `;`
    return best if counts[best] else None


def _separator_hint(given: str | None, looks: str | None) -> str:
    """What the header was read with, what it looks like, and how to say otherwise."""
    seen = f", which looks {_label(looks)}-separated" if looks else ""
    if given is None:
        seen = seen or ", which holds none of , ; tab |"
        return f"{seen} (for another separator pass --delimiter CHAR)"
    read = f" read with --delimiter {_option(given)}"
    if looks is None or looks == given:
        return read
    return f"{read}{seen}: pass --delimiter {_option(looks)} or leave --delimiter out"


def _label(delimiter: str) -> str:
    return "tab" if delimiter == "\t" else repr(delimiter)


def _option(delimiter: str) -> str:
    """The value as typed in a shell: quoted, since `;` and `|` mean something there."""
    if delimiter == "\t":
        return "tab"
    if delimiter == "'":
        return '"\'"'
    return f"'{delimiter}'" if delimiter.isprintable() else excerpt(delimiter)


def _refuse_json(line: str, name: str) -> None:
    """A header that opens a JSON object is JSON Lines read as CSV: say so. Checked only
    once the header failed, so a CSV whose first column is named `{...}` still reads."""
    if line.lstrip().startswith("{"):
        raise InputError(
            f"{name}: line 1 looks like JSON: is this JSON Lines? use --input-format jsonl"
        )
