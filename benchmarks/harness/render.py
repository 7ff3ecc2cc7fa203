"""What the run leaves behind: the text tables, results.json, and the machine facts.

Owns the output formats (one Markdown table style for every scenario, the
JSON document) and the facts that make figures comparable later: date, CPU model,
kernel, Python and library versions, git commit. Each scenario renders its own section
(`render(section)` in its module) with `section` and `run_table` from here.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from .data import BENCH


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    commit = subprocess.run(
        ["git", "-C", str(BENCH.parent), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": version("aiohttp"),
        "uvloop": version("uvloop"),
        "cancel_worker": version("cancel-worker"),
        "git": commit or None,
    }


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table, padded so it also reads as plain text: first column left-aligned,
    the figures right-aligned."""
    widths = [max(3, len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        padded = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * widths[0], *("-" * (w - 1) + ":" for w in widths[1:])]
    return "\n".join([line(headers), line(rule), *(line(row) for row in rows)])


def failed(run: dict[str, Any]) -> str:
    """Suffix for a run's label in a table."""
    return "" if run["ok"] else "  FAILED"


# how each figure of a `Run` is shown, the same in every table
COLUMNS = {
    "refs": "{references:,}",
    "wall s": "{wall_s:.1f}",
    "refs/s": "{refs_per_s:,.0f}",
    "in-proc/s": "{in_process_refs_per_s:,.0f}",
    "CPU s per 10k refs": "{cpu_s_per_10k:.2f}",
    "maxRSS MB": "{maxrss_mb:.1f}",
    "treeRSS MB": "{rss_tree_peak_mb:.1f}",
}


def run_table(
    first: str, names: list[str], runs: list[dict[str, Any]], extra: dict[str, str] | None = None
) -> str:
    """One row per run: its label (marked FAILED if so), then the columns `names` of
    COLUMNS or `extra` (header -> format string over the run's fields)."""
    formats = {**COLUMNS, **(extra or {})}
    rows = [[r["label"] + failed(r), *(_cell(formats[c], r) for c in names)] for r in runs]
    return table([first, *names], rows)


def _cell(fmt: str, run: dict[str, Any]) -> str:
    try:
        return fmt.format(**run)
    except (KeyError, TypeError, ValueError):  # a figure the run does not have (None)
        return "-"


def section(title: str, *blocks: str, notes: Sequence[str] = ()) -> str:
    """A scenario's part of the output: blank line, title, blocks, then its notes."""
    return "\n".join(["", title, *blocks, *(f"note: {n}" for n in notes)])


def header(meta: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"cancel-worker benchmarks  {meta['date']}  quick={meta['quick']}  "
            f"total {meta.get('total_wall_s', 0):.0f} s",
            f"machine: {meta['nproc']} CPUs ({meta['cpu_model']}), {meta['memory_gb']} GB, "
            f"Linux {meta['kernel']}; Python {meta['python']}, aiohttp {meta['aiohttp']}, "
            f"uvloop {meta['uvloop']}, cancel-worker {meta['cancel_worker']} ({meta['git']})",
            f"fast server: {meta.get('server', 'n/a')}",
        ]
    )


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2) + "\n")
