"""The PNG next to results.json: the same numbers, drawn.

Owns the optional matplotlib dependency: if it does not import, `chart` returns a note
and the run goes on (tables and results.json do not need it). Four panels: refs/s and
CPU per 10k references per throughput client (bar = median, dots = rounds), the
per-round ratios, and peak RSS per input size for each memory series.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

BAR_COLORS = {"worker": "tab:orange", "worker-rate0": "tab:red"}


def _throughput_bars(
    ax: Any, tp: dict[str, Any], figure: str, title: str, slices: bool = True
) -> None:
    """Bars: the median per client (and the slices' single runs); dots: every round."""
    rows = [
        (c["label"], c[figure], c["per_round"][figure], key) for key, c in tp["clients"].items()
    ]
    if slices:
        rows += [
            (r["label"].replace(" [", "\n["), r[figure], [], r["client"]) for r in tp["slices"]
        ]
    labels = [r[0] for r in rows]
    bars = ax.barh(
        labels,
        [r[1] or 0 for r in rows],
        color=[BAR_COLORS.get(r[3], "tab:blue") for r in rows],
    )
    ax.bar_label(bars, fmt="%.4g", fontsize=8, padding=18)
    ax.margins(x=0.15)
    for y, (_, _, per_round, _) in enumerate(rows):
        xs = [v for v in per_round if v is not None]
        ax.plot(xs, [y] * len(xs), "k.", markersize=5)
    ax.set_title(title, fontsize=10)
    ax.invert_yaxis()
    ax.tick_params(labelsize=8)


def _ratios(ax: Any, tp: dict[str, Any]) -> None:
    rounds = [r["round"] for r in tp["ratios_per_round"]]
    for name in tp["ratios_median"]:
        values = [r[name] for r in tp["ratios_per_round"]]
        ax.plot(rounds, values, "o-", label=f"{name} (median {tp['ratios_median'][name]})")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(rounds)
    ax.set_xlabel("round")
    ax.set_title("cancel-worker / other, per round", fontsize=10)
    ax.legend(fontsize=7, loc="best")


def _memory(ax: Any, mem: dict[str, Any]) -> None:
    for series in dict.fromkeys(r["series"] for r in mem["runs"]):
        points = [
            (r["references"], r["maxrss_mb"])
            for r in mem["runs"]
            if r["series"] == series and r["ok"]
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, "o-", label=series)
    ax.set_xscale("log")
    top = max((r["maxrss_mb"] for r in mem["runs"]), default=1.0)
    ax.set_ylim(0, top * 1.2)
    ax.set_xlabel("references in input")
    ax.set_ylabel("peak RSS MB")
    ax.set_title("cancel-worker peak RSS per input size", fontsize=10)
    ax.legend(fontsize=7)


def chart(results: dict[str, Any], path: Path) -> str | None:
    """PNG of the numbers; returns a note instead when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "chart skipped: matplotlib not importable (pip install matplotlib)"
    fig, axes = plt.subplots(2, 2, figsize=(14, 9.5))
    meta = results["meta"]
    fig.suptitle(
        f"cancel-worker benchmarks {meta['date']}{' (quick)' if meta['quick'] else ''} - "
        f"{meta['nproc']} CPUs {meta['cpu_model']}, Python {meta['python']}, "
        f"aiohttp {meta['aiohttp']}; server: {meta.get('server')}",
        fontsize=9,
    )
    (refs, cpu), (ratios, memory) = axes
    if tp := results.get("throughput"):
        n = f"{tp['references']:,} refs, median of {tp['rounds']} rounds (dots)"
        _throughput_bars(refs, tp, "refs_per_s", f"references/s, higher is better ({n})")
        title = "CPU s per 10,000 references, lower is better (slices: see the table)"
        _throughput_bars(cpu, tp, "cpu_s_per_10k", title, slices=False)
        _ratios(ratios, tp)
    else:
        for ax in (refs, cpu, ratios):
            ax.set_axis_off()
    if mem := results.get("memory"):
        _memory(memory, mem)
    else:
        memory.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
