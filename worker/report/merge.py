"""merge-reports: combine shard reports into one, proving nothing is missing or doubled.

One module owns the merge so that its promises hold together: OUT never overwrites a
file the merge reads, and appears whole or not at all. Shards are read strictly, each
in its latest-row view (as on resume), with JSON types restored whatever their format;
the merged report is in input-line order, and `<OUT>.runs.jsonl` keeps every shard's
run records plus a totals record, so the night's audit trail survives the merge.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import secrets
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from worker import __version__
from worker.errors import InputError, MergeError, OutRefused, UnreadableReport
from worker.input.parsed import printable
from worker.input.source import open_input
from worker.input.validate import validate
from worker.model import REPORT_COLUMNS, RESTATED, UNSENT, Outcome, Row
from worker.money import money
from worker.observe.words import count
from worker.report.lock import same_file
from worker.report.records import is_jsonl, read_records
from worker.report.runs import read_runs, recorded_inputs, runs_path
from worker.report.shards import SHARD_NAME, check_shards
from worker.report.storage import FILE_MODE
from worker.report.writer import check_report_path, utc_now

#: Columns that hold whole numbers; every other non-empty value is text (README, Report).
INT_COLUMNS = frozenset({"line", "http_status", "attempts", "amount"})
_WHOLE = re.compile(r"-?[0-9]+")

Rec = dict[str, Any]


def check_out(
    out: Path, reports: list[Path], input_path: Path | None, records: dict[Path, Any] | None = None
) -> None:
    """Refuse an OUT (or its run record) that is one of the files the merge reads, or an
    input a shard's run record names (`--input` given or not)."""
    kept = [(p, f"the report {p}") for p in reports]
    kept += [(runs_path(p), f"the run record of {p}") for p in reports]
    if input_path is not None:
        kept.append((input_path, f"the input {input_path}"))
    for report, recs in (records or {}).items():
        kept += [(p, f"{n}, the input of {report}") for p, n in recorded_inputs(report, recs or [])]
    for target, what in ((out, f"OUT {out}"), (runs_path(out), "OUT's run record")):
        for path, name in kept:
            if same_file(target, path):
                raise OutRefused(
                    f"{what} is {name}: merging would overwrite it; choose another OUT, "
                    f"e.g. {_suggested(reports)}"
                )
    check_report_path(out)  # ReportError: OUT's folder is missing, or OUT is no file


def _suggested(reports: list[Path]) -> str:
    """The shards' own name without `.shard-I-of-N`: `p.report.shard-0-of-2.csv` ->
    `p.report.csv`, the report an unsharded run would have written."""
    first = reports[0]
    return str(
        first.with_name(
            SHARD_NAME.sub(".", first.name) if SHARD_NAME.search(first.name) else "merged.csv"
        )
    )


def _typed(path: Path, number: int, row: Rec) -> Rec:
    """A row with JSON types, whether read from CSV (all text) or JSON Lines, whose
    echoed values (numbers, booleans, lists, objects) are kept as they were read."""
    typed: Rec = {}
    for key, value in row.items():
        if value is None or value == "":
            typed[key] = None
        elif key not in INT_COLUMNS:
            # an edited CSV may hold bytes that are not UTF-8: shown as U+FFFD, as the writer does
            typed[key] = printable(value) if isinstance(value, str) else value
        elif (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and _WHOLE.fullmatch(value)
        ):
            typed[key] = int(value)
        else:
            what = f"{key} is not a whole number: {str(value)[:40]!r}"
            raise UnreadableReport(f"report {path}, row {number}: {what}")
    return typed


def _rows(path: Path) -> list[Rec]:
    """A shard's rows, read as strictly as resume reads them (a torn row is an error)."""
    try:  # ReportError (exit 2, as UnreadableReport) names the row it cannot read
        return [_typed(path, n, r) for n, r in enumerate(read_records(path), start=1)]
    except OSError as exc:
        raise UnreadableReport(f"cannot read {path}: {exc.strerror or exc}") from None


def _run_records(report: Path) -> list[Rec] | None:
    """The shard's run records, each marked with its report; None when it has none."""
    if not runs_path(report).exists():
        return None
    try:  # ReportError names the record it cannot read
        return [{**doc, "report": str(report)} for doc in read_runs(report)]
    except OSError as exc:
        raise UnreadableReport(f"cannot read run record of {report}: {exc.strerror}") from None


def _identity(row: Rec) -> tuple[str, str] | tuple[str, int]:
    reference = row.get("payment_reference") or ""
    if Outcome(row["outcome"]) in UNSENT or not reference:
        return ("line", row["line"])
    return (row.get("merchant_number") or "", reference)


def _named(ident: tuple[str, str] | tuple[str, int]) -> str:
    """An `_identity` as a person reads it (not a Python tuple)."""
    first, second = ident
    if first == "line":
        return f"the row of line {second}"
    return f"reference {second} of merchant {first}" if first else f"reference {second}"


def _latest_view(rows: list[Rec]) -> dict[Any, Rec]:
    """Latest row per reference; an unsent row only while no later row is on its line
    (a line fixed under --allow-changed-input, or holding a moved row, is what it says
    now)."""
    last_on_line = {row["line"]: n for n, row in enumerate(rows)}
    view: dict[Any, Rec] = {}
    for n, row in enumerate(rows):
        if last_on_line[row["line"]] != n and Outcome(row["outcome"]) in UNSENT:
            continue
        ident = _identity(row)
        earlier = view.get(ident)
        if earlier is not None and RESTATED in (row.get("detail") or ""):
            # the reference's final row restated on the line the input holds it on now:
            # the payment's amount is the earlier row's
            row = {**row, "amount": earlier.get("amount"), "currency": earlier.get("currency")}
        view[ident] = row
    return view


def _replaced(old: Rec, new: Rec) -> bool:
    """Whether `old`, an unsent row, was written before `new`, a row sent on its line."""
    return (
        Outcome(old["outcome"]) in UNSENT
        and Outcome(new["outcome"]) not in UNSENT
        and str(old.get("finished_at") or "") < str(new.get("finished_at") or "")
    )


def _check_input(input_path: Path, merchant: str | None, rows: list[Rec]) -> None:
    """Every input row has the row on its line, naming the merchant and reference it validates
    to; an invalid row by line only (its report row echoes a shortened reference). A report
    row on a line where the input has no row is of another file."""
    names: dict[int, set[tuple[Any, Any]]] = {}
    for r in rows:
        names.setdefault(r["line"], set()).add((r.get("merchant_number"), r["payment_reference"]))
    absent: list[int] = []
    other: list[int] = []
    source = open_input(str(input_path))  # InputError: exit 2 before anything is written
    try:
        for parsed in source.rows():
            found = names.pop(parsed.line, None)  # what is left at the end matches no input row
            item = validate(parsed, merchant)
            if found is None:
                absent.append(parsed.line)
            elif isinstance(item, Row) and (item.merchant, item.reference) not in found:
                other.append(parsed.line)
    except (InputError, OSError) as exc:
        raise UnreadableReport(f"cannot read {input_path}: {exc}") from None
    finally:
        source.close()
    problems = [
        f"{count(len(lines), noun)} {has if len(lines) == 1 else have}{what} ({_lines(lines)})"
        for lines, noun, (has, have), what in (
            (absent, "input row", ("has", "have"), " no report row"),
            (
                other,
                "input row",
                ("has", "have"),
                " a report row naming another merchant or reference",
            ),
            (sorted(names), "report row", ("is", "are"), " on lines where the input has no row"),
        )
        if lines
    ]
    if problems:
        raise MergeError("; ".join(problems))


def _lines(lines: list[int]) -> str:
    """`line 5`, `lines 5, 9`, `lines 5, 9, ... (12 in all)`: the first ten."""
    shown = ", ".join(map(str, lines[:10]))
    more = f", ... ({len(lines):,} in all)" if len(lines) > 10 else ""
    return f"line {shown}" if len(lines) == 1 else f"lines {shown}{more}"


@dataclass(frozen=True, slots=True)
class Merged:
    """What a merge wrote: its totals record, and the shards that had no run record."""

    out: Path
    totals: Rec
    unrecorded: list[Path]

    def lines(self) -> list[str]:
        """The command's output: the summary, counts per outcome, amounts released."""
        t = self.totals
        n, rows = len(t["reports"]), t["rows"]
        lines = [f"merged {n} reports into {self.out}: {rows} rows, none missing or doubled"]
        lines += [f"{outcome} {count}" for outcome, count in t["outcomes"].items()]
        lines += [f"released {money(units, cur)}" for cur, units in t["released"].items()]
        lines += [f"no run record beside {p}: skipped" for p in self.unrecorded]
        return [*lines, f"run records: {runs_path(self.out)}"]


def _released(rows: list[Rec]) -> dict[str, int]:
    """Per currency, the amounts of `canceled` rows that state both amount and currency."""
    sums: Counter[str] = Counter()
    for r in rows:
        amount, currency = r.get("amount"), r.get("currency")
        if r["outcome"] == Outcome.CANCELED and isinstance(amount, int) and currency:
            sums[currency] += amount
    return dict(sorted(sums.items()))


def _encode(out: Path, columns: list[str], rows: list[Rec]) -> bytes:
    if is_jsonl(out):
        return b"".join(orjson.dumps({c: r.get(c) for c in columns}) + b"\n" for r in rows)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({k: _text(v) for k, v in r.items()} for r in rows)
    return text.getvalue().encode()


def _text(value: object) -> object:
    """A CSV cell: text and empty as they are, anything else (a JSON Lines shard's
    number, boolean, list or object) as JSON, as the report writer writes it."""
    return value if value is None or isinstance(value, str) else orjson.dumps(value).decode()


def _publish(files: list[tuple[Path, bytes]]) -> None:
    """Write each file beside its target, then `os.replace` it into place: a failure (a
    full disk, a kill) leaves no half-written OUT, and removes the temporary files."""
    written: list[tuple[Path, Path]] = []
    target = Path("OUT")
    try:
        for target, data in files:
            tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
            # mode 0640 (less the umask) from creation on: reports name merchants and payments
            with open(tmp, "xb", opener=lambda name, flags: os.open(name, flags, FILE_MODE)) as f:
                written.append((tmp, target))
                f.write(data)
                f.flush()
                os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        for tmp, target in list(written):
            os.replace(tmp, target)
            written.remove((tmp, target))
    except OSError as exc:
        raise OutRefused(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        for tmp, _ in written:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def merge(
    out: Path, reports: list[Path], input_path: Path | None = None, merchant: str | None = None
) -> Merged:
    """Merge `reports` into `out` (and `<out>.runs.jsonl`); raises before writing anything."""
    check_out(out, reports, input_path)
    for i, path in enumerate(reports):  # by file, not by spelling (a shard with no rows too)
        if (first := next((o for o in reports[:i] if same_file(path, o)), None)) is not None:
            also = "" if str(first) == str(path) else f" (also as {first})"
            raise MergeError(
                f"the report {path} is given twice{also}: each of its rows appears in both; "
                "merge each shard's report once"
            )
    records = {p: _run_records(p) for p in reports}
    check_out(out, reports, input_path, records)
    check_shards(reports, records, by_input=input_path is not None)
    columns = dict.fromkeys(REPORT_COLUMNS)
    latest: dict[Any, tuple[Path, Rec]] = {}
    owner: dict[int, tuple[Path, Any]] = {}  # line -> the shard and identity reporting it
    for path in reports:
        shard = _rows(path)
        columns.update((key, None) for row in shard for key in row)  # in the order first seen
        mine = _latest_view(shard)
        for ident, row in mine.items():
            if ident in latest:
                raise MergeError(f"{_named(ident)} appears in both {latest[ident][0]} and {path}")
            latest[ident] = (path, row)
            held = owner.setdefault(row["line"], (path, ident))
            if held[0] == path:
                continue
            # One line, two shards: an unsent row the other shard's later row replaced
            # (its line fixed, the reference now hashes elsewhere) loses it, as within a
            # report; anything else is shards run with different settings or files.
            other = latest[held[1]][1]
            if _replaced(other, row):
                del latest[held[1]]
                owner[row["line"]] = (path, ident)
            elif _replaced(row, other):
                del latest[ident]
            else:
                raise MergeError(f"line {row['line']} is reported in both {held[0]} and {path}")
    rows = sorted((r for _, r in latest.values()), key=lambda r: int(r["line"]))
    if input_path is not None:
        _check_input(input_path, merchant, rows)
    totals = {
        "mode": "merge",
        "merged_at": utc_now(),
        "reports": [str(p) for p in reports],
        "rows": len(rows),
        "outcomes": dict(sorted(Counter(r["outcome"] for r in rows).items())),
        "released": _released(rows),
        "version": __version__,
    }
    runs = [rec for recs in records.values() for rec in recs or []] + [totals]
    encoded = b"".join(orjson.dumps(rec) + b"\n" for rec in runs)
    _publish([(out, _encode(out, list(columns), rows)), (runs_path(out), encoded)])
    return Merged(out, totals, [p for p, recs in records.items() if recs is None])
