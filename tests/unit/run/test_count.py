"""Count: the exact references to send, per merchant, whatever the filter mistook."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from worker.errors import InputError
from worker.input.admission import screen
from worker.input.dedup import CandidateFinder
from worker.input.fingerprint import Recorder
from worker.input.source import Source, open_input
from worker.keys import key_of
from worker.model import Mode, Outcome, Row
from worker.report.resume import RUN, ByLine
from worker.run.count import Counts
from worker.settings import Settings


def test_counts_are_exact_per_merchant_with_a_filter_full_of_false_positives(
    tmp_path: Path,
) -> None:
    path = tmp_path / "in.csv"
    rows = [f"c-{i},T{i % 3}" for i in range(6_000)]
    rows += [f"c-{i},T{i % 3}" for i in range(0, 6_000, 7)]  # real repeats
    rows += [",T1", "c-x,"]  # invalid: no reference; no merchant (none given)
    path.write_text("payment_reference,merchant_number\n" + "\n".join(rows) + "\n")
    settings = Settings(mode=Mode.RUN, input=str(path), report=tmp_path / "r.csv")
    prior = ByLine(RUN)
    prior.add(2, "T0", "c-0", Outcome.CANCELED)  # an earlier run's

    # the pre-pass, with a filter sized for 1,024 keys: thousands of false positives
    source = open_input(str(path))
    source.digest = recorder = Recorder()
    finder, counted = CandidateFinder(expected=1), Counter[str]()
    for parsed in source.rows():
        item = screen(parsed, None, settings.shard)
        if isinstance(item, Row):
            key = key_of(item.merchant, item.reference)
            if not finder.offer(key) and prior.final(item.line, key) is None:
                counted[item.merchant] += 1
    source.close()

    exact = Counter({"T0": 2_000 - 1, "T1": 2_000, "T2": 2_000})
    assert counted != exact  # what the preview used to show
    reopen = lambda: open_input(str(path))  # noqa: E731
    counts = Counts(settings, prior, reopen, recorder.fingerprint(), finder.candidates, counted)
    assert counts.exact() == exact

    # the file changed since it was counted: no count rather than a wrong one
    path.write_text(path.read_text().replace("c-5999,T2", "c-5998,T1"))
    changed = Counts(settings, prior, reopen, recorder.fingerprint(), finder.candidates, counted)
    with pytest.raises(InputError, match="changed"):
        changed.exact()


def test_no_candidates_means_no_second_read(tmp_path: Path) -> None:
    def never() -> Source:
        raise AssertionError("read again")

    settings = Settings(mode=Mode.RUN, input="in.csv", report=tmp_path / "r.csv")
    counts = Counts(settings, ByLine(RUN), never, Recorder().fingerprint(), {}, Counter(T1=3))
    assert counts.exact() == Counter(T1=3)
