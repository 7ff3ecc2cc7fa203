"""`--profile`: where cancel-worker's Python CPU time goes, by py-spy.

One extra run of the throughput scenario's headline client (`cancel-worker run --rate
1000000 --concurrency 64`) on the throughput input under `py-spy record --gil --format
raw --nolineno` (only samples holding the GIL: Python CPU time). The folded stacks go
to benchmarks/out/profile.folded; the table lists own (leaf) time per function. The run
is slower under py-spy and is not part of any other table.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from .clients import PY, Context, cancel_worker_cmd
from .data import BENCH, OUT, ensure_input
from .procs import log
from .render import section, table
from .scenario_throughput import WORKER_ARGS

TITLE = "profile"
_LINE_NO = re.compile(r":\d+\)$")


def own_time(folded: Path) -> tuple[Counter[str], Counter[str], int]:
    """py-spy raw (folded) stacks -> samples per leaf function and per leaf file."""
    own: Counter[str] = Counter()
    files: Counter[str] = Counter()
    total = 0
    for line in folded.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = _LINE_NO.sub(")", stack.rsplit(";", 1)[-1])
        own[leaf] += int(count)
        match = re.search(r"\(([^()]*)\)$", leaf)
        files[match.group(1) if match else leaf] += int(count)
        total += int(count)
    return own, files, total


def run(ctx: Context) -> dict[str, Any]:
    spy = shutil.which("py-spy", path=f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}")
    if spy is None:
        return {"skipped": "py-spy not found (pip install py-spy)"}
    n = ctx.size(50_000)
    path = ensure_input(n)
    folded = OUT / "profile.folded"
    folded.unlink(missing_ok=True)
    with ctx.workdir("profile") as work:
        cmd = [spy, "record", "--format", "raw", "--nolineno", "--gil", "--rate", "250"]
        cmd += ["-o", str(folded)]
        cmd += ["--", *cancel_worker_cmd(), "run", str(path), "--report", str(work / "r.csv")]
        cmd += [*WORKER_ARGS, "--log-format", "json"]
        log(f"profile: py-spy record on cancel-worker, {n:,} references")
        with (work / "stderr.log").open("wb") as err:
            m = ctx.measure(cmd, ctx.fast(), work, 300 + n / 100, stderr=err)
        tail = (work / "stderr.log").read_text(errors="replace")[-400:]
    if not folded.exists():
        return {"skipped": f"py-spy failed (rc={m.returncode}): {tail}"}
    own, files, total = own_time(folded)
    return {
        "references": n,
        "samples": total,
        "folded_stacks": str(folded.relative_to(BENCH.parent)),
        "top_functions_own": [
            {"function": k, "share": round(v / total, 4)} for k, v in own.most_common(15)
        ],
        "top_files_own": [
            {"file": k, "share": round(v / total, 4)} for k, v in files.most_common(10)
        ],
        "note": "py-spy --gil: only samples holding the GIL, i.e. Python CPU time; "
        "wall time under py-spy is not comparable to the measured runs",
    }


def render(prof: dict[str, Any]) -> str:
    if "skipped" in prof:
        return f"\nprofile: skipped: {prof['skipped']}"
    rows = [[f["function"], f"{f['share']:.1%}"] for f in prof["top_functions_own"][:10]]
    return section(
        f"Profile (py-spy, {prof['samples']:,} samples, own time, "
        f"{prof['references']:,} refs, GIL-holding samples only; "
        f"stacks in {prof['folded_stacks']})",
        table(["function (file)", "own"], rows),
    )
