"""Survey: saved whole with the report's file mode, read back as saved, and anything
else (another version, a torn or edited file) read as no survey at all."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from worker.input.checkpoint import Checkpoint
from worker.model import Mode
from worker.report.survey import (
    VERSION,
    SavedSurvey,
    load_survey,
    remove_survey,
    save_survey,
    screening,
    spaced,
    survey_path,
)
from worker.settings import Settings, Shard

SAVED = SavedSurvey(
    screening="s" * 32,
    sha256="a" * 64,
    size=5000,
    runs=("run1", "run2"),
    checkpoints=(
        Checkpoint(100, 5, 4, 0, 3, 3, 2**64 - 1),
        Checkpoint(4000, 200, 199, 2, 196, 190, 7),
    ),
    candidates=(("T1", "r1"), ("T2", "r,2")),
    again={7: 2**64 - 1, 150: 3},
)


def test_a_survey_reads_back_as_saved_with_the_report_s_mode(tmp_path: Path) -> None:
    path = survey_path(tmp_path / "night.report.csv")
    assert path.name == "night.report.csv.survey.json"
    save_survey(path, SAVED)
    assert load_survey(path) == SAVED
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640  # it names references, as the report
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],  # torn
        lambda text: text.replace(f'"version":{VERSION}', f'"version":{VERSION + 1}'),
        lambda text: text.replace("[100,5,", "[-100,5,"),
        lambda text: text.replace("[4000,", "[50,"),  # offsets out of order
        lambda text: text.replace("[4000,", "[9000,"),  # beyond the file's size
        lambda text: text.replace('"runs":', '"rons":'),
        lambda text: text.replace('["T2","r,2"]', '["T2","r,3"]'),  # edited: its digest
        lambda text: text.replace("[100,5,4,0,3,3,", "[100,5,4,0,2,3,"),
        lambda text: "[]",
    ],
)
def test_a_survey_that_is_not_one_whole_reads_as_none(tmp_path: Path, damage: object) -> None:
    path = tmp_path / "r.survey.json"
    save_survey(path, SAVED)
    path.write_text(damage(path.read_text()))  # type: ignore[operator]
    assert load_survey(path) is None
    assert load_survey(tmp_path / "missing.json") is None


def test_every_option_that_reads_the_rows_changes_the_screening(tmp_path: Path) -> None:
    def of(fmt: str = "csv", delimiter: str | None = ",", **kw: object) -> str:
        s = Settings(mode=Mode.RUN, input="in.csv", report=tmp_path / "r", **kw)  # type: ignore[arg-type]
        return screening(s, fmt, delimiter)

    base = of()
    others = [
        of(merchant="T1"),
        of(delimiter=";"),
        of(fmt="jsonl", delimiter=None),
        of(multiline_cells=True),
        of(shard=Shard(1, 2)),
    ]
    assert base == of() and base not in others and len(set(others)) == len(others)
    assert of(rate=5.0, concurrency=3) == base  # how fast it sends is not how it reads
    # the format and separator as found: naming the ones detected changes nothing
    assert of(input_format="csv", delimiter=",") == base


def test_checkpoints_are_kept_a_spacing_apart() -> None:
    marks = [
        Checkpoint(offset, 1, 0, 0, 0, 0, 0) for offset in (0, 10, 1 << 20, (1 << 20) + 5, 3 << 20)
    ]
    assert [c.offset for c in spaced(marks)] == [0, 1 << 20, 3 << 20]


def test_removing_the_survey_removes_a_half_written_one_too(tmp_path: Path) -> None:
    path = survey_path(tmp_path / "night.report.csv")
    save_survey(path, SAVED)
    half = path.with_name(path.name + ".tmp")
    half.write_text('{"version":')  # a kill inside the write
    remove_survey(path)
    assert list(tmp_path.iterdir()) == []


def test_a_fifo_or_an_oversized_file_at_the_survey_s_path_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.report import survey

    fifo = tmp_path / "fifo.survey.json"
    os.mkfifo(fifo)
    assert load_survey(fifo) is None  # returns at once: nobody writes to it
    big = tmp_path / "big.survey.json"
    save_survey(big, SAVED)
    monkeypatch.setattr(survey, "MAX_BYTES", big.stat().st_size - 1)
    assert load_survey(big) is None
    (tmp_path / "dir.survey.json").mkdir()
    assert load_survey(tmp_path / "dir.survey.json") is None
    with pytest.raises(OSError):
        save_survey(tmp_path / "dir.survey.json", SAVED)  # the caller warns and goes on
    assert not (tmp_path / "dir.survey.json.tmp").exists()
