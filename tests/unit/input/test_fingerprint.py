"""Fingerprint: the run reads exactly the bytes the pre-pass counted, or stops."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from worker.errors import InputChanged
from worker.input.fingerprint import BLOCK, Fingerprint, Recorder, Verifier
from worker.input.source import open_input

DATA = random.Random(7).randbytes(3 * BLOCK + BLOCK // 2)


def pieces(data: bytes, seed: int) -> list[bytes]:
    """`data` cut at seeded random places, some pieces empty, some over a block."""
    rng = random.Random(seed)
    out, at = [], 0
    while at < len(data):
        size = rng.choice([0, 1, 100, BLOCK - 1, BLOCK, BLOCK + 3, 2 * BLOCK])
        out.append(data[at : at + size])
        at += size
    return out


def fingerprint(data: bytes, seed: int = 1) -> Fingerprint:
    recorder = Recorder()
    for piece in pieces(data, seed):
        recorder.update(piece)
    return recorder.fingerprint()


def test_the_fingerprint_does_not_depend_on_how_the_bytes_were_read() -> None:
    fp = fingerprint(DATA)
    assert fp == fingerprint(DATA, seed=2)
    assert fp.size == len(DATA) and fp.sha256 == hashlib.sha256(DATA).hexdigest()
    assert len(fp.marks) == 3 * 8  # one per whole block


@pytest.mark.parametrize("seed", range(4))
def test_the_same_bytes_pass_whole_and_in_order(seed: int) -> None:
    check = Verifier(fingerprint(DATA), "in.csv")
    out = b"".join(check.feed(piece) for piece in pieces(DATA, seed + 10))
    assert out == DATA and check.wanted() == 0
    check.finish()


def test_a_changed_block_is_refused_before_any_of_its_bytes_pass() -> None:
    changed = bytearray(DATA)
    changed[BLOCK + 5] ^= 1  # in the second block
    check = Verifier(fingerprint(DATA), "in.csv")
    assert check.feed(bytes(changed[:BLOCK])) == DATA[:BLOCK]
    assert check.feed(bytes(changed[BLOCK : 2 * BLOCK - 1])) == b""  # held, not checked yet
    with pytest.raises(InputChanged, match=f"in.csv changed during the run: bytes {BLOCK:,}"):
        check.feed(bytes(changed[2 * BLOCK - 1 : 2 * BLOCK]))


def test_a_change_in_the_last_short_block_is_refused_too() -> None:
    changed = DATA[:-1] + bytes([DATA[-1] ^ 1])
    check = Verifier(fingerprint(DATA), "in.csv")
    assert check.feed(changed[: 3 * BLOCK]) == DATA[: 3 * BLOCK]
    with pytest.raises(InputChanged):
        check.feed(changed[3 * BLOCK :])


def test_a_file_shorter_or_longer_than_counted_is_refused() -> None:
    check = Verifier(fingerprint(DATA), "in.csv")
    check.feed(DATA[:BLOCK])
    with pytest.raises(InputChanged, match="shorter than when it was counted"):
        check.finish()
    with pytest.raises(InputChanged):
        Verifier(fingerprint(DATA), "in.csv").feed(DATA + b"x")
    # reads are asked for up to the end of a block, never past the counted size
    check, wanted = Verifier(fingerprint(DATA), "in.csv"), []
    while want := check.wanted():
        wanted.append(want)
        check.feed(DATA[sum(wanted) - want : sum(wanted)])
    assert wanted == [BLOCK, BLOCK, BLOCK, BLOCK // 2]


def test_a_file_that_grows_is_read_only_as_far_as_it_was_counted(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    rows = [f"g-{i:06d},T1,some comment {i}" for i in range(20_000)]  # several blocks
    path.write_text("payment_reference,merchant_number,comment\n" + "\n".join(rows) + "\n")
    counted = open_input(str(path))
    counted.digest = recorder = Recorder()
    before = [p.reference for p in counted.rows()]
    counted.close()
    run = open_input(str(path))
    run.digest = None
    run.expect(recorder.fingerprint())
    with open(path, "a") as f:  # a producer still appending, after the count
        f.write("g-000000,T1,again\n" * 50)
    assert [p.reference for p in run.rows()] == before
    assert run.grown() == len("g-000000,T1,again\n") * 50
    run.close()


def test_a_file_edited_in_place_stops_the_read_at_the_edit(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    rows = [f"e-{i:06d},T1" for i in range(30_000)]
    path.write_text("payment_reference,merchant_number\n" + "\n".join(rows) + "\n")
    counted = open_input(str(path))
    counted.digest = recorder = Recorder()
    list(counted.rows())
    counted.close()
    run = open_input(str(path))
    run.expect(recorder.fingerprint())
    data = bytearray(path.read_bytes())
    at = data.index(b"e-020000")
    data[at : at + 8] = b"e-000001"  # now a repeat the count never saw
    path.write_bytes(bytes(data))
    read: list[str | None] = []
    with pytest.raises(InputChanged):
        for parsed in run.rows():
            read.append(parsed.reference)
    run.close()
    assert "e-000001" in read and read.count("e-000001") == 1  # the edit was never parsed
    assert len(read) < 20_000 - 1
