"""Skip: a rerun that starts past the rows the report proves finished decides every
row as a rerun that reads the whole file does (the differential tests), and starts
there only when the proof holds."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from worker.input import source as source_module
from worker.input.admission import Reported, Send
from worker.input.source import open_input
from worker.model import EXTRA_COLUMNS, REPORT_COLUMNS, Mode, Outcome, Result
from worker.report import survey
from worker.report.runs import append_run
from worker.run.prepare import Prepared, prepare
from worker.settings import Settings

HEADER = ",".join(REPORT_COLUMNS + EXTRA_COLUMNS) + "\n"


@pytest.fixture(autouse=True)
def small_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small file with many checkpoints: one per 200-byte read, every input surveyed."""
    monkeypatch.setattr(source_module, "CHUNK", 200)
    monkeypatch.setattr(survey, "SPACING", 0)
    monkeypatch.setattr(survey, "MIN_BYTES", 0)


def write_input(path: Path, seed: int, rows: int = 600) -> Path:
    """References (some repeated, far apart), rows without a reference, blank lines."""
    rnd = random.Random(seed)
    seen: list[str] = []
    lines = ["payment_reference,merchant_number"]
    for n in range(rows):
        pick = rnd.random()
        if pick < 0.03:
            lines.append("")
        elif pick < 0.06:
            lines.append(",T1")
        elif pick < 0.12 and seen:
            lines.append(f"{rnd.choice(seen)},T1")
        else:
            seen.append(f"r{seed}-{n}")
            lines.append(f"{seen[-1]},T1")
    path.write_text("\n".join(lines) + "\n")
    return path


def settings(src: Path, report: Path, **kw: Any) -> Settings:
    return Settings(mode=Mode.RUN, input=str(src), report=report, yes=True, **kw)


def row(line: int, ref: str, outcome: str, merchant: str = "T1") -> str:
    return f"{line},{merchant},{ref},{outcome},201,,,1,,2026-12-01T21:00:00.000Z,100,EUR,run1\n"


def decide(prepared: Prepared) -> dict[str, Any]:
    """Every row decided as the run's reader does: from the checkpoint when there is one
    (the rows before it settled as the report has them), else from the first line."""
    s = prepared.settings
    admit = prepared.admission()
    source = open_input(s.input)
    settled: Counter[Outcome] = Counter()
    if prepared.before is not None:
        source.resume_at(prepared.before.at)
        settled.update(prepared.before.settled)
    sent, results = [], []
    for batch in source.batches():
        for a in admit.chunk(batch):
            if isinstance(a, Send):
                sent.append((a.row.line, a.row.reference, a.maybe_landed))
            elif isinstance(a, Reported):
                settled[a.outcome] += 1
            elif isinstance(a, Result):
                results.append((a.line, a.reference, a.outcome))
    reading = (source.lines_seen, source.lines_accounted, source.blank_rows, source.rows_seen)
    source.close()
    return {
        "sent": sent,
        "results": results,
        "settled": settled,
        "reading": reading,
        "total": prepared.total,
        "left": prepared.left,
        "to_send": prepared.to_send,
        "open_intents": admit.open_intents
        + (prepared.before.open_intents if prepared.before else 0),
    }


def prepared_for(s: Settings, run_id: str) -> Prepared:
    prepared = prepare(s, run_id)
    prepared.source.close()
    prepared.store.close()
    prepared.lock.release()
    return prepared


def started(s: Settings, run: Prepared) -> None:
    """The start record `run` writes before its first request."""
    assert run.binding is not None
    record = {"event": "start", "run_id": run.run_id, "mode": run.binding.kind}
    append_run(s.report, record | run.binding.fields())


def killed_night(tmp_path: Path, seed: int, cut: int, **kw: Any) -> tuple[Settings, list[str]]:
    """The first run's survey and start record, and the report rows it wrote before a
    kill: what the whole file's decisions would have written, the first `cut` of them."""
    src = write_input(tmp_path / "in.csv", seed)
    s = settings(src, tmp_path / "in.report.csv", **kw)
    first = prepared_for(s, "run1")
    started(s, first)
    plan = decide(first)
    rows = [row(line, ref, "canceled") for line, ref, _ in plan["sent"]]
    rows += [row(line, ref, o.value) for line, ref, o in plan["results"]]
    rows.sort(key=lambda r: int(r.split(",", 1)[0]))
    return s, rows[:cut]


def both_ways(s: Settings, rows: list[str]) -> tuple[Prepared, dict[str, Any], dict[str, Any]]:
    """The rerun with the survey, and the same rerun without it."""
    s.report.write_text(HEADER + "".join(rows))
    fast = prepared_for(s, "run2")
    with_survey = decide(fast)
    kept = survey.survey_path(s.report).read_bytes()
    survey.survey_path(s.report).unlink()
    slow = prepared_for(s, "run2")
    assert slow.before is None
    survey.survey_path(s.report).write_bytes(kept)
    return fast, with_survey, decide(slow)


@pytest.mark.parametrize("seed", range(6))
def test_a_rerun_past_its_finished_rows_decides_as_a_whole_read(tmp_path: Path, seed: int) -> None:
    s, rows = killed_night(tmp_path, seed, cut=random.Random(seed).randrange(100, 500))
    fast, skipped, whole = both_ways(s, rows)
    assert fast.before is not None and fast.before.at.line > 50
    assert skipped == whole


def test_a_repeat_of_a_reference_first_seen_before_the_checkpoint_is_a_duplicate(
    tmp_path: Path,
) -> None:
    refs = [f"a{n}" for n in range(300)]
    src = tmp_path / "in.csv"
    src.write_text("payment_reference,merchant_number\n" + "".join(f"{r},T1\n" for r in refs))
    src.write_text(src.read_text() + "a3,T1\n")  # line 302 repeats line 5
    s = settings(src, tmp_path / "in.report.csv")
    first = prepared_for(s, "run1")
    started(s, first)
    rows = [row(n + 2, r, "canceled") for n, r in enumerate(refs[:250])]
    fast, skipped, whole = both_ways(s, rows)
    assert fast.before is not None and fast.before.at.line > 5  # past a3's first line
    assert skipped == whole
    assert (302, "a3", Outcome.DUPLICATE) in skipped["results"]
    assert "a3" not in [ref for _, ref, _ in skipped["sent"]]


@pytest.mark.parametrize(
    "edit",
    [
        "a row of another reference on its line",  # a hand edit
        "a failed row",
        "a second row on a line",
        "a row on a blank line",
        "a valid row reported invalid",
    ],
)
def test_the_checkpoint_stays_before_a_line_the_report_does_not_prove(
    tmp_path: Path, edit: str
) -> None:
    s, rows = killed_night(tmp_path, 7, cut=400)
    at = 150
    line, _, ref, *_ = rows[at].split(",")
    blank = next(n for n, text in enumerate(Path(s.input).read_text().split("\n"), 1) if not text)
    if edit == "a row of another reference on its line":
        rows[at] = row(int(line), ref + "x", "canceled")
    elif edit == "a failed row":
        rows[at] = row(int(line), ref, "failed")
    elif edit == "a second row on a line":
        rows.append(rows[at])
    elif edit == "a row on a blank line":
        rows.append(row(blank, "z", "canceled"))
        line = str(blank)
    else:
        rows[at] = row(int(line), ref, "invalid")
    fast, skipped, whole = both_ways(s, rows)
    if edit not in ("a failed row", "a second row on a line"):
        assert fast.before is None and not fast.prior.by_line  # the proof fails: by reference
    else:
        assert fast.before is not None and 50 < fast.before.at.line <= int(line)
    assert skipped == whole


def test_another_merchant_option_reads_the_whole_file(tmp_path: Path) -> None:
    """The survey was saved under other options: it says nothing of this run's rows."""
    s, rows = killed_night(tmp_path, 8, cut=400)
    s.report.write_text(HEADER + "".join(rows))
    other = prepared_for(settings(Path(s.input), s.report, merchant="T2"), "run2")
    assert other.before is None
    assert prepared_for(s, "run3").before is None  # run2 read it otherwise: no skip now


def test_a_file_changed_since_the_survey_is_read_whole(tmp_path: Path) -> None:
    s, rows = killed_night(tmp_path, 9, cut=400)
    src = Path(s.input)
    src.write_text(src.read_text().replace("r9-5,", "r9-X,", 1))  # same size, other bytes
    s.report.write_text(HEADER + "".join(rows))
    prepared = prepared_for(settings(src, s.report, allow_changed_input=True), "run2")
    assert prepared.before is None


def test_a_retry_run_reads_the_whole_file_and_a_plain_rerun_after_it_skips(tmp_path: Path) -> None:
    s, rows = killed_night(tmp_path, 10, cut=400)
    s.report.write_text(HEADER + "".join(rows))
    retry = settings(Path(s.input), s.report, retry_outcomes=frozenset({Outcome.NOT_FOUND}))
    run2 = prepared_for(retry, "run2")
    assert run2.before is None
    started(s, run2)
    assert prepared_for(s, "run3").before is not None  # the retry read it as the others did


def test_journaled_references_a_retry_reopens_keep_the_journal_as_a_whole_read_does(
    tmp_path: Path,
) -> None:
    """A killed run's journal names references the report has `not_found` before the
    checkpoint: counted as the whole read counts them (the journal must outlive the run)."""
    s, rows = killed_night(tmp_path, 11, cut=400)
    refs = [r.split(",")[2] for r in rows if ",canceled," in r][::3]  # near the checkpoint too
    rows = [r.replace(",canceled,", ",not_found,") if r.split(",")[2] in refs else r for r in rows]
    journal = s.report.with_name(s.report.name + ".journal")
    journal.write_text("".join(f'["T1","{ref}"]\n' for ref in [*refs, "elsewhere"]))
    fast, skipped, whole = both_ways(s, rows)
    assert fast.before is not None and 0 < fast.before.open_intents < len(refs)
    assert skipped == whole


def test_a_changed_file_read_from_a_stale_checkpoint_is_judged_by_a_whole_read(
    tmp_path: Path,
) -> None:
    """The file changed since the survey: its saved offset now falls one byte into a line
    whose rest reads as another header with its columns swapped (a read that starts
    there stops the file). The whole read sees one row, not a header, and goes on."""
    s, rows = killed_night(tmp_path, 12, cut=400)
    s.report.write_text(HEADER + "".join(rows))
    at = prepared_for(s, "probe").before
    assert at is not None
    src = Path(s.input)
    data = src.read_bytes()
    offset = at.at.offset
    src.write_bytes(
        data[: offset - 2] + b"\nx" + b"merchant_number,payment_reference\n" + data[offset:]
    )
    again = prepared_for(settings(src, s.report, allow_changed_input=True), "run2")
    assert again.before is None and again.total is not None


def test_a_line_an_earlier_rerun_reported_again_does_not_end_the_skip(tmp_path: Path) -> None:
    """A SIGTERM left `failed` rows; the rerun that retried them saved their lines'
    hashes in its survey, so the next rerun starts past those lines (each has two report
    rows) and still decides as a whole read. A copied row on a line no run retried still
    ends the skip before it."""
    s, rows = killed_night(tmp_path, 13, cut=450)
    failed = [n for n in (120, 121, 200) if ",canceled," in rows[n]]
    for n in failed:
        rows[n] = rows[n].replace(",canceled,", ",failed,")
    s.report.write_text(HEADER + "".join(rows))
    retry = prepared_for(s, "run2")  # sends the failed ones again
    assert retry.before is not None and retry.before.at.line <= int(rows[failed[0]].split(",")[0])
    started(s, retry)
    rows += [rows[n].replace(",failed,", ",canceled,") for n in failed]  # what run2 wrote
    fast, skipped, whole = both_ways(s, rows)
    last = max(int(rows[n].split(",")[0]) for n in failed)
    assert fast.before is not None and fast.before.at.line > last
    assert skipped == whole
    rows.append(rows[300])  # copied by hand
    fast, skipped, whole = both_ways(s, rows)
    assert fast.before is not None and fast.before.at.line <= int(rows[300].split(",")[0])
    assert skipped == whole


def test_naming_the_format_and_separator_found_still_skips(tmp_path: Path) -> None:
    s, rows = killed_night(tmp_path, 14, cut=400)
    s.report.write_text(HEADER + "".join(rows))
    spelled = settings(Path(s.input), s.report, input_format="csv", delimiter=",")
    assert prepared_for(spelled, "run2").before is not None


def test_more_lines_to_send_again_than_a_survey_holds_saves_none_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.run import prepass

    monkeypatch.setattr(prepass, "MAX_AGAIN", 5)
    sizes: list[int] = []
    note = prepass._note

    def noted(again: dict[int, int], line: int, hashed: int) -> bool:
        full = note(again, line, hashed)
        sizes.append(len(again))
        return full

    monkeypatch.setattr(prepass, "_note", noted)
    s, rows = killed_night(tmp_path, 15, cut=400)
    rows = [r.replace(",canceled,", ",failed,") for r in rows]  # an outage: all failed
    s.report.write_text(HEADER + "".join(rows))
    prepared_for(s, "run2")
    saved = survey.load_survey(survey.survey_path(s.report))
    assert saved is not None and saved.again == {}
    assert len(sizes) > 300 and max(sizes) == 5  # never more held while reading
    monkeypatch.setattr(prepass, "MAX_AGAIN", 10_000)
    prepared_for(s, "run3")
    saved = survey.load_survey(survey.survey_path(s.report))
    assert saved is not None and len(saved.again) > 300
