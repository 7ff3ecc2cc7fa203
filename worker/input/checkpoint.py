"""Checkpoint: a place in a plain file where reading may start again, and what the
first read had counted by then.

The pre-pass marks one after each chunk it parses (`Source.mark`), at the start of the
first line not yet complete; a rerun that knows every row before it is finished reads
the bytes before it only to check them (`Source.resume_at`), without parsing them, and
starts its counts where the mark left them (see `run.skip`). Only plain files are
marked: a gzip stream cannot be entered mid-way, and a cell spanning lines
(`--multiline-cells`) may hold a mark's line inside it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Checkpoint:
    offset: int  # bytes before the next line's first byte
    line: int  # number of that line (from 1)
    accounted: int  # lines the parser accounted for (header, rows, blank lines)
    blank: int  # blank rows among them
    rows_seen: int  # rows parsed, of any shard
    rows: int  # rows of this shard (what `Survey.rows` counts)
    proof: int  # sum of `row_hash` over this shard's rows, mod 2**64
