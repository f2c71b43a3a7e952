"""Text laid out as Go's ``text/tabwriter`` lays it out, with spaces.

Theory of operation. The text is cut into lines and each line into cells at tabs;
a cell followed by a tab belongs to a column, the text after a line's last tab does
not. A column is a run of consecutive lines that all have a cell at that index:
a line with fewer cells ends the run, so two tables separated by a shorter line are
aligned independently (which is why kubectl describe's ``Labels:`` and
``Conditions:`` blocks line up on their own). Each column is as wide as its widest
cell plus ``padding`` (at least ``min_width``); cells are padded with spaces, the
last cell of a line is written as it is.

Widths count characters (Go counts runes). Pure.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["tabwrite"]


def _write_lines(
    out: list[str], lines: Sequence[Sequence[str]], start: int, stop: int, widths: list[int]
) -> None:
    for line in lines[start:stop]:
        parts: list[str] = []
        for index, cell in enumerate(line):
            if index < len(widths):
                parts.append(cell.ljust(widths[index]))
            else:
                parts.append(cell)
        out.append("".join(parts) + "\n")


def _format(
    out: list[str],
    lines: Sequence[Sequence[str]],
    start: int,
    stop: int,
    *,
    widths: list[int],
    min_width: int,
    padding: int,
) -> None:
    column = len(widths)
    row = start
    while row < stop:
        if column >= len(lines[row]) - 1:
            row += 1
            continue
        # lines[row] opens a block of lines that all have a cell in this column
        _write_lines(out, lines, start, row, widths)
        start = row
        width = min_width
        while row < stop and column < len(lines[row]) - 1:
            width = max(width, len(lines[row][column]) + padding)
            row += 1
        widths.append(width)
        _format(out, lines, start, row, widths=widths, min_width=min_width, padding=padding)
        widths.pop()
        start = row
    _write_lines(out, lines, start, stop, widths)


def tabwrite(text: str, *, min_width: int = 0, padding: int = 1) -> str:
    """``text`` (tab-separated cells, newline-ended lines) as Go's tabwriter writes it
    with ``Init(w, min_width, tabwidth, padding, ' ', 0)``."""
    if not text:
        return ""
    ends_with_newline = text.endswith("\n")
    raw = text[:-1] if ends_with_newline else text
    lines = [line.split("\t") for line in raw.split("\n")]
    out: list[str] = []
    _format(out, lines, 0, len(lines), widths=[], min_width=min_width, padding=padding)
    result = "".join(out)
    return result if ends_with_newline else result[:-1]
