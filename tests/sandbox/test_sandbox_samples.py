"""The sample inputs hold what samples/README.md says they hold, and every scenario
row in them means what the README says to the sandbox."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from worker.sandbox.scenarios import payment_for, scenario_of

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
KEYS = ["payment_reference", "merchant_number", "comment"]


def _csv_rows() -> list[dict[str, str]]:
    with (SAMPLES / "payments.csv").open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == KEYS
        return list(reader)


def _jsonl_rows() -> tuple[list[dict[str, str]], list[int]]:
    rows, bad = [], []
    lines = (SAMPLES / "payments.jsonl").read_text(encoding="utf-8").split("\n")[:-1]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            bad.append(number)
            continue
        assert set(obj) <= set(KEYS)
        rows.append({k: obj.get(k, "") for k in KEYS})
    return rows, bad


def test_csv_and_jsonl_hold_the_same_rows() -> None:
    rows, bad = _jsonl_rows()
    assert rows == _csv_rows()
    assert len(bad) == 1


def test_the_cases_the_readme_promises() -> None:
    rows = _csv_rows()
    refs = [r["payment_reference"] for r in rows]
    assert 55 <= len(rows) <= 70
    prefixes = [found[0].prefix for ref in refs if (found := scenario_of(ref.strip()))]
    expected = [
        "captured-",
        "settled-",
        "canceled-",
        "unknown-",
        "blocked-",
        "flaky-",
        "reset-",
        "dropped-",
        "slow-",
        "throttled-",
        "nocancel-",
    ]
    assert sorted(prefixes) == sorted(expected)  # one of each, no broken-/forbidden-
    assert refs.count("") == 1
    assert sum(len(r["comment"]) > 256 for r in rows) == 1
    assert any("/" in ref for ref in refs)
    assert any(not ref.isascii() for ref in refs)
    assert any(ref != ref.strip() and ref.strip() for ref in refs)
    keys = [(r["merchant_number"].strip(), r["payment_reference"].strip()) for r in rows]
    assert len(keys) - len(set(keys)) == 1  # exactly one duplicate
    merchants = {r["merchant_number"] for r in rows}
    assert {"T123456", "T654321", ""} <= merchants
    assert rows[-1]["merchant_number"] == ""  # the fallback row is the last one
    assert sum(r["merchant_number"] == "" for r in rows) == 1
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    for ref in refs:
        if scenario_of(ref):
            assert f"`{ref}`" in readme


def test_plain_sample_rows_are_authorized_in_the_sandbox() -> None:
    for row in _csv_rows():
        ref = row["payment_reference"].strip()
        if ref and scenario_of(ref) is None:
            assert payment_for("T1", ref).state == "Authorized"
