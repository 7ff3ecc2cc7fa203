"""Shortcut: the survey at a run's edges (see `report.survey`, `run.skip`).

Before the pre-pass: the survey an earlier run saved for this file and options, if
any, and where this run may start with it. After the pre-pass, before the first
request: what to save for the next rerun. Neither is ever a reason to stop a run:
without a survey a rerun reads the whole file, as it always could.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worker.input.lines import GZIP_MAGIC
from worker.input.source import Source
from worker.observe import logs
from worker.report.resume import PriorRows, ResumePolicy
from worker.report.runs import read_other_bytes
from worker.report.survey import (
    MAX_AGAIN,
    SavedSurvey,
    load_survey,
    save_survey,
    screening,
    spaced,
    survey_path,
    worth_saving,
)
from worker.run.prepass import Start, Survey
from worker.run.skip import Watched, plan
from worker.settings import Settings


def saved_survey(settings: Settings, source: Source, real: Path) -> SavedSurvey | None:
    """The survey an earlier run saved for this file, read with this run's screening
    (see `report.survey`); a gzip file or a stream has none."""
    if not source.rereadable or source.head[:2] == GZIP_MAGIC:
        return None
    saved = load_survey(survey_path(real))
    return saved if saved and saved.screening == _screening(settings, source) else None


def start_at(prior: PriorRows, runs: list[dict[str, Any]], policy: ResumePolicy) -> Start | None:
    """Where the pre-pass and the run start: past the rows the report proves finished,
    when every run the report records read the file under the survey's screening."""
    if not isinstance(prior, Watched) or not runs or read_other_bytes(runs, prior.saved.sha256):
        return None
    if any(r.get("run_id") not in prior.saved.runs for r in runs):
        return None
    return plan(prior, policy)


def keep_survey(
    settings: Settings,
    source: Source,
    real: Path,
    found: Survey,
    saved: SavedSurvey | None,
    run_id: str,
) -> None:
    """Save what the pre-pass learnt for a rerun (see `report.survey`): never a reason
    to stop, since a rerun without it reads the whole file."""
    if not found.checkpoints or found.pairs is None or not worth_saving(found.fingerprint.size):
        return
    sha = found.fingerprint.sha256
    # what an earlier survey of the same bytes (and, as `saved` is, this screening) knew
    same = saved if saved is not None and saved.sha256 == sha else None
    again = (same.again if same else {}) | (found.again or {})
    keep = SavedSurvey(
        _screening(settings, source),
        sha,
        found.fingerprint.size,
        (*(same.runs if same else ()), run_id),
        tuple(spaced(found.checkpoints)),
        tuple(found.pairs.values()),
        again if found.again is not None and len(again) <= MAX_AGAIN else {},
    )
    try:
        save_survey(survey_path(real), keep)
    except OSError as exc:
        logs.log.warning(
            "survey_not_saved",
            survey=str(survey_path(real)),
            error=exc.strerror or str(exc),
            why="a rerun of this night reads the whole file again instead of starting "
            "past the rows it finished",
        )


def _screening(settings: Settings, source: Source) -> str:
    columns = source.columns
    return screening(settings, source.format, columns.delimiter if columns else None)
