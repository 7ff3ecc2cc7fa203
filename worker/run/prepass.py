"""Pre-pass: the first read of a file, before any request.

It counts the rows, finds the keys that may repeat (see `input.dedup`), counts what an
earlier run settled and what this one would send, fingerprints the bytes, adds the
input's side of the by-line resume's proof (`report.resume.ByLine`), and keeps a small
file's screened rows for the run (`input.screened`). In a plain file it also marks a
`Checkpoint` after each chunk, with the rows and the proof up to there: saved beside
the report (`report.survey`), they let a rerun start after the rows already finished.

`prepass(..., start=...)` is that rerun's read (see `run.skip`): the bytes before the
checkpoint are hashed, not parsed, and what the checkpoint counted stands for the rows
before it; the saved repeat candidates and where the report first has each replace the
duplicate filter, so its count is exact without the filter's extra pass.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from worker.errors import InputError
from worker.input.admission import screen_batch
from worker.input.checkpoint import Checkpoint
from worker.input.dedup import CandidateDeduper, CandidateFinder
from worker.input.fingerprint import Fingerprint, Recorder
from worker.input.screened import Keeper, Screened
from worker.input.source import Source
from worker.model import Outcome, Rejected, Row
from worker.report.resume import MASK, ByLine, PriorRows, row_hash
from worker.report.survey import MAX_AGAIN, MAX_CANDIDATES
from worker.settings import Settings


@dataclass
class Survey:
    """What the first pass over a file learnt."""

    deduper: CandidateDeduper
    rows: int  # rows of this shard
    left: int  # of those, rows the report does not settle yet
    fingerprint: Fingerprint  # the bytes read: their size, SHA-256 and block marks
    #: merchant -> references this run would send (first sight, not settled; a key the
    #: duplicate filter mistook for a repeat, ~0.1 %, is missing from it: see `count`)
    to_send: Counter[str]
    candidates: dict[bytes, int]  # keys that may repeat -> the offer that made them one
    #: what the input's lines add to the by-line resume's proof (see `resume.ByLine`)
    proof: int = 0
    screened: Screened | None = None  # every row screened, when the file is small
    #: where a later read may start (plain files only; see `checkpoint`)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    #: the (merchant, reference) of every candidate, for the survey saved on disk (None:
    #: more than `survey.MAX_CANDIDATES`, no survey)
    pairs: dict[bytes, tuple[str, str]] | None = field(default_factory=dict)
    #: line -> row hash of the lines this run sends (or reports) again, with an earlier
    #: run's (None: more than `survey.MAX_AGAIN`)
    again: dict[int, int] | None = field(default_factory=dict)


@dataclass(frozen=True)
class Start:
    """Where a rerun's pre-pass starts (`run.skip`): a checkpoint every row before
    which the report finished, the saved candidates, and the line the report first
    has each on before it (a valid row's first sight)."""

    at: Checkpoint
    candidates: dict[bytes, tuple[str, str]]
    first_seen: dict[bytes, int]
    checkpoints: list[Checkpoint]  # the saved ones up to `at`, which it goes on from
    again: dict[int, int]  # the saved lines sent again before `at` (`survey.again`)
    extra: int  # what their rows after the first add to the proof


def prepass(
    settings: Settings,
    open_source: Callable[[], Source],
    expected_lines: int,
    prior: PriorRows,
    start: Start | None = None,
) -> Survey:
    """Read the file once (from `start`, when given); raises InputError if it cannot."""
    source = open_source()
    source.digest = recorder = Recorder()
    keeper = Keeper(expected_lines)
    rows = settled = proof = marked = 0
    to_send: Counter[str] = Counter()
    by_line = prior if isinstance(prior, ByLine) else None
    fresh = prior.rows == 0  # nothing reported yet: nothing settled, nothing to prove
    merchant, shard = settings.merchant, settings.shard
    checkpoints: list[Checkpoint] = []
    pairs: dict[bytes, tuple[str, str]] = {}
    overflow = False  # more candidates than a survey holds
    again: dict[int, int] = {}  # lines with rows that this run writes again
    crowded = False  # more of them than a survey holds: no more are kept
    marks = source.mark() is not None  # a plain file: checkpoints are worth their cost
    finder: CandidateFinder | None = None
    known: CandidateDeduper | None = None
    if start is None:
        finder = CandidateFinder(expected_lines)
    else:  # only a saved candidate can repeat: exact, with where each was first seen
        source.resume_at(start.at)
        checkpoints = list(start.checkpoints)
        pairs = start.candidates
        known = CandidateDeduper(pairs, seen=start.first_seen)
        rows = settled = start.at.rows  # every row before it is finished
        marked = start.at.proof
        again = dict(start.again)
    try:
        for batch in source.batches():
            items, keys = screen_batch(batch, merchant, shard)
            keeper.keep((items, keys), source.bytes_fed, source.lines_seen)
            if not fresh:
                prior.prefetch(
                    [k for k in keys if k is not None], [i.line for i in items if i is not None]
                )
            for item, key in zip(items, keys, strict=True):
                if item is None:
                    continue
                rows += 1
                reported = 0
                if marks or by_line is not None:
                    h = row_hash(item.line, item.merchant, item.reference, key is None)
                    marked += h
                    if by_line is not None and (reported := by_line.rows_on(item.line)):
                        proof += reported * h
                if key is None:
                    assert isinstance(item, Rejected)
                    unsent = not fresh and prior.unsent_before(item)
                    settled += unsent
                    if reported and not unsent:  # its line gets another row
                        crowded = _note(again, item.line, h) or crowded
                    continue
                repeat = (
                    finder.offer(key)
                    if finder is not None
                    else known is not None and known.earlier(key, item.line) is not None
                )
                if repeat and key not in pairs:
                    if len(pairs) < MAX_CANDIDATES:
                        pairs[key] = (item.merchant, item.reference)
                    else:
                        overflow = True
                done = not fresh and prior.final(item.line, key) is not None
                if repeat and not done and not fresh:  # a repeat the report has: passed by
                    done = prior.unsent_before(_duplicate(item))
                settled += done
                if reported and not done:  # its line gets another row
                    crowded = _note(again, item.line, h) or crowded
                if not repeat and not done:
                    to_send[item.merchant] += 1
            if marks and (mark := source.mark()) is not None:
                checkpoints.append(replace(mark, rows=rows, proof=marked & MASK))
    except OSError as exc:
        raise InputError(f"cannot read input {settings.input}: {exc.strerror or exc}") from None
    except InputError as exc:
        raise InputError(f"cannot read input {settings.input}: {exc}") from None
    finally:
        source.close()
    if finder is not None:
        candidates, deduper = finder.candidates, CandidateDeduper(finder.candidates)
    else:  # exact: nothing for `count` to settle
        assert start is not None
        candidates, deduper = {}, CandidateDeduper(pairs, seen=start.first_seen)
    return Survey(
        deduper,
        rows,
        rows - settled,
        recorder.fingerprint(),
        to_send,
        candidates,
        (proof + (start.at.proof + start.extra if start else 0)) & MASK,  # see `skip`
        keeper.screened(source),
        checkpoints if marks else [],
        None if overflow else pairs,
        None if crowded else again,
    )


def _note(again: dict[int, int], line: int, hashed: int) -> bool:
    """Keep a line sent again, while the survey can hold it; True once it cannot (so
    that a night of failed rows does not grow the map past `MAX_AGAIN` in memory)."""
    if len(again) >= MAX_AGAIN:
        return True
    again[line] = hashed
    return False


def _duplicate(row: Row | Rejected) -> Rejected:
    """A row as the run reports it when it repeats an earlier one. By line, a line the
    report says was a duplicate is one again (the same file); by reference, one the
    filter mistook for a repeat (~0.1 %) and that no longer repeats anything is counted
    settled but sent: `left` is then one too low, `to_send` stays exact (see `count`)."""
    return Rejected(row.line, row.merchant, row.reference, Outcome.DUPLICATE, "")
