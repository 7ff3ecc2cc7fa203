"""Survey: `<report>.survey.json`, what a run's pre-pass learnt of a plain input file,
kept beside the report so that a rerun can start after the rows already finished.

A rerun of a ten-million-row night killed at 90 % would otherwise parse the nine
million finished rows twice (the pre-pass, then the run) before its first request.
The survey holds, for the input's bytes (its SHA-256) as read with this version's
screening rules and this run's options (`screening`):

- checkpoints (`input.checkpoint`), about one per MiB: where reading may start again,
  with the rows and the by-line proof's sum (`resume.row_hash`) up to there;
- the keys that may repeat (the duplicate filter's candidates) as (merchant,
  reference), at most `MAX_CANDIDATES` of them (a file with more gets no survey);
- the runs that read the file under that screening (`runs`);
- the lines those runs sent again (a `failed` row retried), with their row's hash, at
  most `MAX_AGAIN`: their report rows are more than the one a checkpoint counts.

It is a shortcut, never a source of truth: the report is still read whole, and a
checkpoint is used only when the report proves every row before it finished, row for
row (see `run.skip`); anything that does not fit (another version or option, a changed
file, an unreadable survey, or one changed since it was saved: it carries the SHA-256
of what it holds) means the rerun reads the whole file as before. Written
whole or not at all (a temporary file renamed over it); removed when a night ends
complete, and only saved for an input of `MIN_BYTES` or more. Memory while it is
loaded: ~370 bytes a checkpoint (~370 KB per GB of input), ~400 a candidate and
~100 a line sent again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import stat
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from worker.input.checkpoint import Checkpoint
from worker.report.storage import FILE_MODE
from worker.settings import Settings

#: Bumped whenever what the survey holds, or means, changes.
VERSION = 2
#: Candidates a survey holds at most: a file repeating more keys is reread whole.
MAX_CANDIDATES = 20_000
#: Lines sent again a survey remembers at most (see `SavedSurvey.again`): a rerun
#: starts before the first line reported twice that it does not know.
MAX_AGAIN = 20_000
#: A bigger file is not read as a survey: no survey this version writes comes near it
#: (a checkpoint per MiB is ~90 bytes: 9 MB for a 100 GB input; candidates ~2 MB).
MAX_BYTES = 64 << 20
#: Bytes of input between two checkpoints, at least.
SPACING = 1 << 20
#: A smaller input gets no survey: its rerun reads it whole in a few seconds at most,
#: and a file beside the report that saves nothing is only clutter.
MIN_BYTES = 8 << 20
#: The modules whose rules decide what a line's row is and whether it is valid: a
#: survey saved by another version of any of them is not used.
_RULES = (
    "input",
    "keys.py",
    "settings.py",
    "model.py",
    "report/records.py",
    "report/resume.py",
    "report/survey.py",
    "run/prepass.py",
    "run/skip.py",
)


def worth_saving(size: int) -> bool:
    """Whether an input of `size` bytes gets a survey (see `MIN_BYTES`)."""
    return size >= MIN_BYTES


def survey_path(report: Path) -> Path:
    return report.with_name(report.name + ".survey.json")


@dataclass(frozen=True)
class SavedSurvey:
    screening: str  # see `screening`
    sha256: str  # of the input's bytes
    size: int
    runs: tuple[str, ...]  # run ids that read the input under this screening
    checkpoints: tuple[Checkpoint, ...]
    candidates: tuple[tuple[str, str], ...]  # (merchant, reference)
    #: line -> `row_hash` of its row, for the lines a run sent again (a `failed` row
    #: retried): a report row for each time, which a checkpoint's sum counts once
    again: dict[int, int] = field(default_factory=dict)


def screening(settings: Settings, fmt: str, delimiter: str | None) -> str:
    """What, beside the input's bytes, decides each line's row and its validity: the
    options that read the file (the format and separator as found, so that naming the
    one detected changes nothing), and this version's rules (their source, hashed) on
    this Python (its Unicode tables)."""
    s = settings
    options = [VERSION, fmt, delimiter, s.multiline_cells, s.merchant]
    options += [s.shard.index, s.shard.count, _rules_digest()]
    # the row rules ask Unicode's categories, which change with Python's tables
    options += [unicodedata.unidata_version, sys.version.split()[0]]
    return hashlib.sha256(orjson.dumps(options)).hexdigest()[:32]


@functools.cache
def _rules_digest() -> str:
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for name in _RULES:
        path = root / name
        for file in sorted(path.glob("*.py")) if path.is_dir() else [path]:
            digest.update(file.name.encode() + b"\x00" + file.read_bytes())
    return digest.hexdigest()


def load_survey(path: Path) -> SavedSurvey | None:
    """The survey at `path`, or None when there is none or it cannot be trusted to be
    one this version wrote whole (then the rerun reads the whole file)."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
            return None  # a FIFO would hang the read, a huge file fill the memory
        doc = orjson.loads(path.read_bytes())
        if doc.get("version") != VERSION or doc.pop("digest", None) != _digest_of(doc):
            return None  # another version's, or edited since it was saved
        checkpoints = tuple(Checkpoint(*map(_int, c)) for c in doc["checkpoints"])
        candidates = tuple((str(m), str(r)) for m, r in doc["candidates"])
        survey = SavedSurvey(
            str(doc["screening"]),
            str(doc["sha256"]),
            _int(doc["size"]),
            tuple(str(r) for r in doc["runs"]),
            checkpoints,
            candidates,
            {_int(line): _int(hashed) for line, hashed in doc["again"]},
        )
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    lines = [c.line for c in checkpoints]
    offsets = [c.offset for c in checkpoints]
    if lines != sorted(lines) or offsets != sorted(offsets) or offsets[-1:] > [survey.size]:
        return None
    return survey


def _int(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError("not a count")
    return value


def save_survey(path: Path, survey: SavedSurvey) -> None:
    """Write it whole or leave the old one (raises OSError: the caller goes on without)."""
    doc: dict[str, Any] = {
        "version": VERSION,
        "screening": survey.screening,
        "sha256": survey.sha256,
        "size": survey.size,
        "runs": list(survey.runs),
        "checkpoints": [_row(c) for c in survey.checkpoints],
        "candidates": [list(pair) for pair in survey.candidates],
        "again": sorted(survey.again.items()),
    }
    doc["digest"] = _digest_of(doc)
    tmp = _tmp(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)  # as the report's
        with open(fd, "wb") as f:
            f.write(orjson.dumps(doc))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _digest_of(doc: dict[str, Any]) -> str:
    """SHA-256 of what the survey holds: the candidates it names decide what is a repeat
    past the checkpoint, so a survey changed by hand must not be used."""
    return hashlib.sha256(orjson.dumps(doc)).hexdigest()


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def _row(c: Checkpoint) -> list[int]:
    return [c.offset, c.line, c.accounted, c.blank, c.rows_seen, c.rows, c.proof]


def remove_survey(path: Path) -> None:
    """The survey, and a temporary one a kill left half-written."""
    for each in (path, _tmp(path)):
        with contextlib.suppress(FileNotFoundError):
            each.unlink()


def spaced(checkpoints: Iterable[Checkpoint]) -> list[Checkpoint]:
    """At most one checkpoint per `SPACING` bytes of input."""
    kept: list[Checkpoint] = []
    for c in checkpoints:
        if not kept or c.offset - kept[-1].offset >= SPACING:
            kept.append(c)
    return kept
