"""The simulator in CI: a fixed number of seeded nights, and the bugs it must catch.

Every history is a whole night (runs, crashes, resumes) against the fake world on a
fake clock; a failing seed's message holds its history and the one command that
replays it. `pytest tests/sim -k "night[seed_12345]"` reruns one CI seed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sim.history import replay_command, run_history
from tests.sim.planted import BUGS, RARE

#: Histories in every CI run (about 15 s on two cores); `make sim SEEDS=...` for more.
CI_SEEDS = 1000
#: The planted bugs must each be caught within these first seeds.
PLANTED_BUDGET = 300
#: Real bugs the simulator found (both fixed), by the seed that found them: each seed's
#: night must stay clean. 43: a run record torn by a power cut had the next record
#: glued onto it, and the run after refused to start (report/runs.py). 1224: the same
#: with an intent: a landed cancel was sent again, unqueried (report/journal.py).
FOUND = (43, 1224)
#: A rare planted bug is checked on a seed that catches it (three crashes in a row); a
#: change to the run that moves the steps may need a new one (`make sim`). 1224 caught
#: it first; since the rate slot is taken after the journal line, 3646 did; since a
#: torn report row's lines are queried first (which covers it on 3646), 20577 does.
RARE_SEEDS = {"an intent journal's torn last line kept": 20577}
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("seed", range(CI_SEEDS), ids=lambda seed: f"seed_{seed}")
def test_night(seed: int) -> None:
    history = run_history(seed)
    assert not history.violations, f"{history.text()}\nreplay: {replay_command(seed)}"


def test_a_seed_replays_the_same_history() -> None:
    # Seed 0 crashes with a power cut mid-run, and resumes: faults, crash and requests
    # come out the same in this process, and in another one with other string hashes.
    first, again = run_history(0), run_history(0)
    assert "power cut" in first.text() and first.runs >= 2
    assert first.text() == again.text()
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    other = subprocess.run(
        [sys.executable, "-m", "tests.sim", "--seed", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert other.stdout.strip() == first.text()


@pytest.mark.parametrize("bug", list(BUGS))
def test_a_planted_bug_is_caught(bug: str, monkeypatch: pytest.MonkeyPatch) -> None:
    invariant, plant = BUGS[bug]
    plant(monkeypatch)
    for seed in range(PLANTED_BUDGET):
        history = run_history(seed)
        if any(v.startswith(f"{invariant}:") for v in history.violations):
            print(f"{bug}: caught by {invariant} at seed {seed}")
            return
    pytest.fail(f"{bug}: no seed of the first {PLANTED_BUDGET} broke {invariant}")


@pytest.mark.parametrize("seed", FOUND, ids=lambda seed: f"found_{seed}")
def test_a_night_that_found_a_real_bug_stays_clean(seed: int) -> None:
    history = run_history(seed)
    assert not history.violations, f"{history.text()}\nreplay: {replay_command(seed)}"


@pytest.mark.parametrize("bug", list(RARE))
def test_a_rare_planted_bug_is_caught_on_its_seed(
    bug: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    invariant, plant = RARE[bug]
    plant(monkeypatch)
    history = run_history(RARE_SEEDS[bug])
    assert any(v.startswith(f"{invariant}:") for v in history.violations), history.text()
