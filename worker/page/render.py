"""Render: a `Night` and its `Verdict` as one HTML page, through a Jinja2 template.

Jinja2 with autoescape on: every value from the files (references, merchants,
details, run ids, paths) reaches the page escaped, whatever the template does with it;
the only markup not from the template is the charts' SVG, built in `charts` with
every text escaped. The page's Content-Security-Policy forbids scripts and every
network load besides, so that a slip in escaping would still run nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from worker import __version__
from worker.money import exponent, money
from worker.page import charts
from worker.page.night import GROUP_OF, GROUPS, LIST_LIMIT, LISTED, Breakdown, Listed, Night
from worker.page.verdict import Verdict, meaning, stopped_by

#: The page's policy: nothing may load or run; only its own inline style and charts.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)
#: The per-merchant table shows this many merchants, those with the most rows first.
MERCHANT_LIMIT = 100

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True)
class ListView:
    """A follow-up list: columns that hold one value in every row shown are said once."""

    outcome: str
    total: int
    shown: int
    same: list[tuple[str, str]]  # (column, the value every row shown has)
    columns: list[str]
    rows: list[list[str]]


_LIST_COLUMNS = ("line", "reference", "merchant", "amount", "payment state", "detail")


def _cells(row: Listed) -> list[str]:
    amount = money(row.amount, row.currency) if row.amount is not None and row.currency else ""
    return [
        f"{row.line:,}",
        row.reference,
        row.merchant,
        amount,
        row.payment_state,
        row.detail,
    ]


def list_view(outcome: str, total: int, rows: Sequence[Listed]) -> ListView:
    cells = [_cells(r) for r in rows]
    keep = [
        i
        for i, name in enumerate(_LIST_COLUMNS)
        if name in ("line", "reference") or len({c[i] for c in cells}) > 1
    ]
    same = [
        (name, cells[0][i])
        for i, name in enumerate(_LIST_COLUMNS)
        if i not in keep and cells and cells[0][i]
    ]
    return ListView(
        outcome,
        total,
        len(rows),
        same,
        [_LIST_COLUMNS[i] for i in keep],
        [[c[i] for i in keep] for c in cells],
    )


@dataclass(frozen=True)
class Amount:
    currency: str
    text: str
    known: bool


def _amounts(sums: dict[str, int]) -> list[Amount]:
    return [
        Amount(cur, money(units, cur), exponent(cur) is not None)
        for cur, units in sorted(sums.items())
    ]


def _released_text(b: Breakdown) -> str:
    return ", ".join(money(u, c) for c, u in sorted(b.released.items()))


def when(stamp: str | None) -> str:
    """`2026-11-27T01:02:03.456Z` as `2026-11-27 01:02:03` (the page says UTC once)."""
    if not stamp:
        return ""
    return stamp.replace("T", " ", 1)[:19]


def page(night: Night, verdict: Verdict) -> str:
    """The whole page as text."""
    total = night.rows
    outcome_rows = [
        (group, outcome.value, night.outcomes[outcome.value])
        for group, outcomes in GROUPS.items()
        for outcome in outcomes
        if night.outcomes[outcome.value]
    ]
    bars = [charts.Bar(o, n, g) for g, o, n in outcome_rows]
    step, buckets = charts.buckets(night.minutes if night.mode == "run" else night.finished)
    spans = [
        charts.Span(
            f"{r.run_id} exit {r.exit_code if r.exit_code is not None else '?'}",
            r.started_at,
            r.finished_at,
        )
        for r in night.runs
    ]
    merchants = sorted(night.merchants.items(), key=lambda kv: (-kv[1].rows, kv[0]))
    merchants = [(m, b) for m, b in merchants if b.rows]
    template = _ENV.get_template("card.html.j2")
    return template.render(
        csp=CSP,
        defs=charts.DEFS,
        night=night,
        verdict=verdict,
        total=total,
        groups=GROUPS,
        group_of=GROUP_OF,
        outcome_rows=outcome_rows,
        outcome_chart=charts.outcome_bars(bars, total),
        released=_amounts(dict(night.released)),
        held=_amounts(dict(night.held)),
        step=step,
        buckets=[(t, n) for t, n in buckets if n],
        timeline=charts.timeline(step, buckets, spans),
        runs=[(r, meaning(r.exit_code), stopped_by(r)) for r in night.runs],
        lists=[
            list_view(o.value, night.outcomes[o.value], night.lists.get(o.value, []))
            for o in LISTED
            if night.outcomes[o.value]
        ],
        list_limit=LIST_LIMIT,
        merchants=merchants[:MERCHANT_LIMIT],
        merchant_count=len(merchants),
        shards=sorted((k, b) for k, b in night.shards.items() if b.rows),
        released_text=_released_text,
        when=when,
        version=__version__,
    )
