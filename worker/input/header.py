"""Header: a CSV's first line to `Columns` (where the known columns are, the separator).

Kept apart from `rows` because it runs once, before any request, and owns every
message about a header that cannot be used (exit 2); `rows` only splits the lines
after it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

from worker.input.lines import InputError
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

    @property
    def others(self) -> tuple[int, ...]:
        """The columns a report repeats: all but the reference and the merchant."""
        return tuple(i for i in range(len(self.names)) if i not in (self.reference, self.merchant))


def _columns_for(header: list[str], delimiter: str) -> Columns | None:
    names = [norm(h) for h in header]
    ref = next((names.index(k) for k in REFERENCE_KEYS if k in names), None)
    if ref is None:
        return None
    merchant = next((names.index(k) for k in MERCHANT_KEYS if k in names), None)
    comment = next((names.index(k) for k in COMMENT_KEYS if k in names), None)
    return Columns(tuple(h.strip() for h in header), ref, merchant, comment, delimiter)


def parse_header(line: str, name: str) -> Columns:
    """The CSV header: find the reference column, and the separator when it is not `,`."""
    line = line.removeprefix("\ufeff").rstrip("\r")
    if not line.strip():
        raise InputError(f"{name}: line 1 is blank: a CSV input needs a header row")
    for delimiter in DELIMITERS:
        try:
            header = next(csv.reader([line], delimiter=delimiter, strict=True))
        except csv.Error as exc:
            _refuse_json(line, name)
            raise InputError(f"{name}: cannot read the CSV header (line 1): {exc}") from None
        columns = _columns_for(header, delimiter)
        if columns is not None:
            return columns
    _refuse_json(line, name)
    raise InputError(
        f"{name}: no reference column; the header (line 1) needs one of "
        f"{', '.join(REFERENCE_KEYS)} (found: {excerpt(line)})"
    )


def _refuse_json(line: str, name: str) -> None:
    """A header that opens a JSON object is JSON Lines read as CSV: say so. Checked only
    once the header failed, so a CSV whose first column is named `{...}` still reads."""
    if line.lstrip().startswith("{"):
        raise InputError(
            f"{name}: line 1 looks like JSON: is this JSON Lines? use --input-format jsonl"
        )
