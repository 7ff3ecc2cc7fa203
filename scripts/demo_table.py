"""Print a cancel-worker report as a table for people: `make demo` uses it.

Shows every row's line, merchant, reference, outcome, HTTP status and payment state,
then the count of each outcome and, given the run's exit code, what that code means
(worker/exits.py). The table fits the terminal (80 columns first): a row's `detail`
(why it is invalid, not cancelable, ...) follows on the same line when it fits there,
else on the next line, indented and wrapped, never cut. Widths are measured in
terminal cells, so a reference in CJK or with an emoji stays aligned.
"""

from __future__ import annotations

import csv
import shutil
import sys
import textwrap
from collections import Counter

from rich.cells import cell_len, set_cell_size

from worker.exits import summary_line

#: (report column, heading, width in cells); 79 cells with the gaps.
COLUMNS = (
    ("line", "line", 4),
    ("merchant_number", "merchant", 8),
    ("payment_reference", "reference", 24),
    ("outcome", "outcome", 16),
    ("http_status", "http", 4),
    ("payment_state", "state", 13),
)
GAP = "  "
TABLE = sum(width for _, _, width in COLUMNS) + len(GAP) * (len(COLUMNS) - 1)
#: A detail beside its row only when it gets at least this much room.
MIN_DETAIL = 30
INDENT = " " * 6


def cut(text: str, width: int) -> str:
    """`text` in exactly `width` cells: padded, or cut with an ellipsis."""
    text = " ".join(text.split())  # a comment's line breaks would break the table
    if cell_len(text) > width:
        text = set_cell_size(text, width - 1) + "…"
    return set_cell_size(text, width)


def render(rows: list[dict[str, str]], width: int) -> list[str]:
    beside = width - TABLE - len(GAP) >= MIN_DETAIL
    head = GAP.join(cut(title, w) for _, title, w in COLUMNS)
    lines = [(head + GAP + "detail") if beside else head.rstrip()]
    for row in rows:
        cells = [
            cut(row[name], w).strip().rjust(w) if name == "line" else cut(row[name], w)
            for name, _, w in COLUMNS
        ]
        line = GAP.join(cells)
        detail = " ".join((row.get("detail") or "").split())
        if detail and beside and cell_len(detail) <= width - TABLE - len(GAP):
            lines.append(line + GAP + detail)
            continue
        lines.append(line.rstrip())
        if detail:
            wrap = max(width - len(INDENT), 20)
            lines.extend(INDENT + part for part in textwrap.wrap(detail, wrap))
    return lines


def main(path: str, exit_code: str | None = None, width: int | None = None) -> int:
    width = width or shutil.get_terminal_size(fallback=(80, 24)).columns
    with open(path, newline="", encoding="utf-8") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["line"]))
    for line in render(rows, width):
        print(line)
    counts = Counter(r["outcome"] for r in rows)
    summary = ", ".join(f"{o} {n:,}" for o, n in counts.most_common())
    print()
    print(textwrap.fill(f"outcomes: {summary}", width, subsequent_indent="  "))
    if exit_code is not None:
        print()
        print(
            textwrap.fill(
                f"cancel-worker exited {exit_code}: {summary_line(int(exit_code))}", width
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
