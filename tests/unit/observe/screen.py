"""A tiny terminal for tests: what a person would see after rich's output, not its bytes.

It applies text, carriage return, line feed, cursor up and erase-line (what rich's live
display uses to redraw itself) to a grid of lines, and ignores colours and cursor
visibility. It never wraps, so a line written past the console's width shows up longer
than that width.
"""

from __future__ import annotations

import re

CSI = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z])")


def screen(output: str) -> list[str]:
    lines, row, col, pos = [""], 0, 0, 0
    while pos < len(output):
        if match := CSI.match(output, pos):
            arg, command = match.groups()
            if command == "A":
                row = max(row - int(arg or 1), 0)
            elif command == "K":
                lines[row] = "" if arg == "2" else lines[row][:col]
            pos = match.end()
            continue
        char, pos = output[pos], pos + 1
        if char == "\r":
            col = 0
        elif char == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        else:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + char + line[col + 1 :]
            col += 1
    shown = [line.rstrip() for line in lines]
    while shown and not shown[-1]:
        shown.pop()
    return shown
