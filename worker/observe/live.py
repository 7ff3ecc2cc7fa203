"""The live display's region on the terminal, redrawn in place even after a resize.

rich's `Live` moves the cursor up one row per line of its last drawing before it draws
the next. A terminal narrowed since then (200 -> 80 columns) has re-wrapped each wider
line onto more rows, so moving up by the line count alone left the top of the old
drawing on the screen: a stale half-line. `Reflowing` counts the rows each line takes
at the terminal's width now.
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.control import Control
from rich.live_render import LiveRender
from rich.segment import Segment


class Reflowing(LiveRender):
    """rich's live region, moving up over as many rows as its last drawing takes now."""

    def __init__(self, renderable: RenderableType, console: Console) -> None:
        super().__init__(renderable)
        self._console = console
        self._widths: list[int] = []  # of each line of the last drawing, in cells

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        drawn = list(super().__rich_console__(console, options))
        segments = [seg for seg in drawn if isinstance(seg, Segment)]
        self._widths = [Segment.get_line_length(line) for line in Segment.split_lines(segments)]
        yield from drawn

    def _rows_now(self) -> None:
        if self._shape is not None and self._widths:
            width = max(self._console.width, 1)
            rows = sum(max(1, -(-cells // width)) for cells in self._widths)
            self._shape = (self._shape[0], rows)

    def position_cursor(self) -> Control:
        self._rows_now()
        return super().position_cursor()

    def restore_cursor(self) -> Control:
        self._rows_now()
        return super().restore_cursor()
