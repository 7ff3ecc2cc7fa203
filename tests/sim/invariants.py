"""Invariants: what must hold after every simulated night, read from the files.

Each check returns violations as text, `name: what`, so a failing seed says which
invariant broke (the planted-bug tests look for the name). Checked elsewhere, as the
calls arrive (`world.World.received`): `double-cancel` and `final-resent`.

- `one-final-row`: every input reference has exactly one final row, its latest; every
  invalid and duplicate line has exactly one row; no row names anything else.
- `canceled-match`: a `canceled` row names a payment the API holds as Canceled, with
  its amount and currency; a payment a cancel of ours canceled is reported `canceled`.
- `released-total`: the last run's `released_total` is the sum of the report's latest
  `canceled` rows, per currency.
- `secret`: neither the client secret nor any token issued is in any file.
- `internal-error`: no row says the worker hit a bug.
- `exit-code`: each run's exit code is the README's table applied to how it ended (an
  abort seen by the world, a SIGTERM) and what its report then holds.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from worker.model import NEEDS_PERSON_OUTCOMES, RUN_FINAL, UNSENT, Outcome
from worker.settings import MAX_REFERENCE

if TYPE_CHECKING:
    from tests.sim.world import RunResult, World

Key = tuple[str, str]
_FINAL = frozenset(o.value for o in RUN_FINAL)
_UNSENT = frozenset(o.value for o in UNSENT)


def rows(report: Path) -> list[dict[str, str]]:
    """The report's whole rows (a torn last line, left by a power cut, is not one)."""
    if not report.exists():
        return []
    text = report.read_bytes().decode("utf-8", "replace")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return list(csv.DictReader(io.StringIO(text)))


def latest(report_rows: list[dict[str, str]]) -> dict[Key, dict[str, str]]:
    """Latest row per reference, rows never sent (invalid, duplicate) left out."""
    view: dict[Key, dict[str, str]] = {}
    for row in report_rows:
        if row["outcome"] not in _UNSENT:
            view[(row["merchant_number"], row["payment_reference"])] = row
    return view


def final_keys(report: Path) -> set[Key]:
    return {k for k, row in latest(rows(report)).items() if row["outcome"] in _FINAL}


def exit_code(
    run: int, code: int, report: Path, *, abort: bool, signalled: bool, late_abort: bool = False
) -> list[str]:
    """`late_abort`: the abort's cause came after the SIGTERM (3 and 143 both hold)."""
    report_rows = rows(report)
    outcomes = {row["outcome"] for row in latest(report_rows).values()}
    outcomes |= {row["outcome"] for row in report_rows if row["outcome"] == "invalid"}
    if abort:
        expected = 3
    elif signalled:
        expected = 143
    elif Outcome.FAILED.value in outcomes:
        expected = 5
    elif outcomes & {o.value for o in NEEDS_PERSON_OUTCOMES}:
        expected = 1
    else:
        expected = 0
    if code != expected and not (late_abort and code == 3):
        why = "abort" if abort else "SIGTERM" if signalled else f"outcomes {sorted(outcomes)}"
        return [f"exit-code: run {run} exited {code}, expected {expected} ({why})"]
    return []


def night(
    input_rows: list[tuple[str, str]],
    world: World,
    report: Path,
    folder: Path,
    last: RunResult,
    secrets: list[str],
) -> list[str]:
    """The invariants of a completed night."""
    report_rows = rows(report)
    found = (
        _one_final_row(input_rows, report_rows)
        + _canceled_match(world, report_rows)
        + _released(last, report_rows)
        + _secrets(folder, [*secrets, *world.issued])
    )
    found += [
        f"internal-error: line {r['line']}: {r['detail']}"
        for r in report_rows
        if r["error_type"] == "internal_error"
    ]
    return found + world.violations


def _one_final_row(
    input_rows: list[tuple[str, str]], report_rows: list[dict[str, str]]
) -> list[str]:
    found = []
    by_line: dict[int, list[str]] = {}
    finals: Counter[Key] = Counter()
    for row in report_rows:
        by_line.setdefault(int(row["line"]), []).append(row["outcome"])
        if row["outcome"] in _FINAL:
            finals[(row["merchant_number"], row["payment_reference"])] += 1
    seen: set[Key] = set()
    lines = set()
    for line, (reference, merchant) in enumerate(input_rows, start=2):
        lines.add(line)
        outcomes = by_line.get(line, [])
        key = (merchant, reference)
        if not reference or len(reference) > MAX_REFERENCE:
            if outcomes != ["invalid"]:
                found.append(f"one-final-row: invalid line {line} has rows {outcomes}")
        elif key in seen:
            if outcomes != ["duplicate"]:
                found.append(f"one-final-row: duplicate line {line} ({reference}) has {outcomes}")
        else:
            seen.add(key)
            if finals[key] != 1 or not outcomes or outcomes[-1] not in _FINAL:
                found.append(
                    f"one-final-row: {reference} (line {line}) has {finals[key]} final rows, "
                    f"rows {outcomes}"
                )
    for line in sorted(set(by_line) - lines):
        found.append(f"one-final-row: line {line} is not in the input, yet has {by_line[line]}")
    return found


def _canceled_match(world: World, report_rows: list[dict[str, str]]) -> list[str]:
    found = []
    view = latest(report_rows)
    for key, row in view.items():
        payment = world.payments.get(key)
        outcome = row["outcome"]
        if outcome == "canceled":
            if payment is None or payment.state != "Canceled":
                state = payment.state if payment else "not found"
                found.append(f"canceled-match: {key[1]} reported canceled, API says {state}")
            elif (row["amount"], row["currency"]) != (str(payment.amount), payment.currency):
                found.append(
                    f"canceled-match: {key[1]} reported {row['amount']} {row['currency']}, "
                    f"API says {payment.amount} {payment.currency}"
                )
    for key, payment in world.payments.items():
        if payment.ours and key in view and view[key]["outcome"] != "canceled":
            found.append(
                f"canceled-match: a cancel of ours canceled {key[1]}, reported "
                f"{view[key]['outcome']}"
            )
    return found


def _released(last: RunResult, report_rows: list[dict[str, str]]) -> list[str]:
    total: Counter[str] = Counter()
    for row in latest(report_rows).values():
        if row["outcome"] == "canceled" and row["amount"]:
            total[row["currency"]] += int(row["amount"])
    said = {c: v for c, v in last.released_total.items() if v}
    if said != dict(total):
        return [f"released-total: the run said {said}, the report sums to {dict(total)}"]
    return []


def _secrets(folder: Path, secrets: list[str]) -> list[str]:
    found = []
    needles = [s.encode() for s in secrets]
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [f"secret: {path.name} holds a secret" for s in needles if s in data][:1]
    return found
