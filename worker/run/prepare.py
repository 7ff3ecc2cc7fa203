"""Prepare: everything that can fail before the first request, so it fails as exit 2.

The report path is checked, the input opened (once) and its header checked, the
existing report read strictly, the intent journal read, and, for a file that can be
read twice, the duplicate pre-pass made. Nothing here sends anything or writes
anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from worker.input.admission import Admission, screen
from worker.input.dedup import CandidateDeduper, Deduper, ExactDeduper, find_candidates, key_of
from worker.input.lines import InputError
from worker.input.source import Source, open_input
from worker.model import Mode, Row
from worker.report.journal import IntentJournal, journal_path
from worker.report.records import ReportError
from worker.report.resume import PriorRows, load_report, policy_for
from worker.report.writer import check_report_path
from worker.settings import Settings


class UsageError(Exception):
    """Found before any request: exit 2."""


@dataclass
class Prepared:
    """What `prepare` learnt before the first request."""

    settings: Settings
    source: Source
    prior: PriorRows
    pending: set[bytes]
    deduper: Deduper
    total: int | None  # rows of this shard, when the input could be counted

    def admission(self) -> Admission:
        s = self.settings
        return Admission(
            merchant=s.merchant,
            shard=s.shard,
            deduper=self.deduper,
            prior=self.prior,
            pending=self.pending,
        )


def prepare(settings: Settings) -> Prepared:
    """Everything before the first request; raises UsageError (exit 2) on bad input."""
    if settings.input != "-" and Path(settings.input).resolve() == settings.report.resolve():
        raise UsageError("the report path is the input file; choose another --report")
    try:
        check_report_path(settings.report)
        source = open_input(settings.input, settings.input_format)
    except (InputError, ReportError) as exc:
        raise UsageError(str(exc)) from None
    try:
        prior = load_report(settings.report, policy_for(settings.mode))
        sends = settings.mode is Mode.RUN and not settings.dry_run
        pending = IntentJournal.load(journal_path(settings.report), prior) if sends else set()
        deduper: Deduper
        total: int | None = None
        if source.rereadable:
            deduper, total = _prepass(settings, source)
        else:
            deduper = ExactDeduper()
    except (InputError, ReportError) as exc:
        source.close()
        raise UsageError(str(exc)) from None
    return Prepared(settings, source, prior, pending, deduper, total)


def _prepass(settings: Settings, run_source: Source) -> tuple[CandidateDeduper, int]:
    """First read of a file: count rows and find keys that may repeat (see `dedup`)."""
    source = open_input(settings.input, settings.input_format)
    count = 0

    def keys() -> Iterator[bytes]:
        nonlocal count
        for parsed in source.rows():
            item = screen(parsed, settings.merchant, settings.shard)
            if item is None:
                continue
            count += 1
            if isinstance(item, Row):
                yield key_of(item.merchant, item.reference)

    try:
        candidates = find_candidates(keys(), run_source.estimated_lines())
    except OSError as exc:
        raise InputError(f"cannot read input {settings.input}: {exc.strerror or exc}") from None
    except InputError as exc:
        raise InputError(f"cannot read input {settings.input}: {exc}") from None
    finally:
        source.close()
    return CandidateDeduper(candidates), count
