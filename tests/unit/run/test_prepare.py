"""Prepare refuses, before anything is read or sent, a report that cannot be the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import UsageError
from worker.model import Mode
from worker.run.prepare import prepare
from worker.settings import Settings


def test_the_input_as_report_is_refused_with_the_report_to_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("night.csv").write_text("payment_reference\nA\n")
    Path("link.csv").symlink_to("night.csv")
    for report in ("night.csv", "link.csv", "./night.csv"):
        settings = Settings(mode=Mode.RUN, input="night.csv", report=Path(report))
        with pytest.raises(UsageError, match=r"is the input file; .* --report night\.report\.csv"):
            prepare(settings)


def test_a_symlinked_report_whose_target_folder_is_missing_is_refused(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("payment_reference\nA\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "gone" / "r.csv")
    settings = Settings(mode=Mode.RUN, input=str(tmp_path / "in.csv"), report=tmp_path / "link.csv")
    with pytest.raises(UsageError, match=r"folder .*gone does not exist"):
        prepare(settings)
    assert not (tmp_path / "gone").exists()
