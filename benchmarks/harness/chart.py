"""The PNG next to results.json: the same numbers, drawn.

Owns the optional matplotlib dependency: if it does not import, `chart` returns a note
and the run goes on (tables and results.json do not need it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def chart(results: dict[str, Any], path: Path) -> str | None:
    """PNG of the numbers; returns a note instead when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "chart skipped: matplotlib not importable (pip install matplotlib)"
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    meta = results["meta"]
    fig.suptitle(
        f"cancel-worker benchmarks {meta['date']} - {meta['nproc']} CPUs {meta['cpu_model']}, "
        f"Python {meta['python']}, aiohttp {meta['aiohttp']}; server: {meta.get('server')}",
        fontsize=9,
    )
    if tp := results.get("throughput"):
        labels = [r["label"].replace(" [", "\n[") for r in tp["runs"]]
        for ax, key, title in (
            (axes[0][0], "refs_per_s", "throughput, references/s (higher is better)"),
            (axes[0][1], "cpu_s_per_10k", "CPU seconds per 10,000 references (lower is better)"),
            (axes[1][0], "maxrss_mb", "peak RSS MB, largest process (lower is better)"),
        ):
            values = [r[key] for r in tp["runs"]]
            bars = ax.barh(labels, values, color="tab:blue")
            bars[0].set_color("tab:orange")
            ax.bar_label(bars, fmt="%.4g", fontsize=8)
            ax.set_title(title, fontsize=10)
            ax.invert_yaxis()
            ax.tick_params(labelsize=8)
    else:
        for ax in (axes[0][0], axes[0][1], axes[1][0]):
            ax.set_axis_off()
    ax = axes[1][1]
    if mem := results.get("memory"):
        for mode, marker in (("dry-run", "o-"), ("http", "s-")):
            points = [(r["references"], r["maxrss_mb"]) for r in mem["runs"] if r["mode"] == mode]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker, label=f"cancel-worker {mode}")
        ax.set_xscale("log")
        top = max((r["maxrss_mb"] for r in mem["runs"]), default=1.0)
        ax.set_ylim(0, top * 1.2)
        ax.set_xlabel("references in input")
        ax.set_ylabel("peak RSS MB")
        ax.set_title("memory vs input size (flat = largest within 20% of smallest)", fontsize=10)
        ax.legend(fontsize=8)
    else:
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
