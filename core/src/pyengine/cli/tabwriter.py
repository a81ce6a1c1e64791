"""Elastic tabstops as Go's text/tabwriter computes them (left-aligned, no flags).

A cell is text ended by a tab; the text after a line's last tab is not part of any column. A column
block is a run of consecutive lines that all have a cell in that column; every cell of a block is
padded to the block's widest cell plus ``padding`` (at least ``minwidth``). A line without any tab ends
all blocks. The docker CLI prints its tables with minwidth 10, tabwidth 1, padding 3, padchar ' '.
"""

from __future__ import annotations


def _blocks(text: str) -> list[tuple[list[list[str]], bool]]:
    """Split into groups of lines (each a list of cells) separated by tab-less lines, as Go flushes."""
    lines = text.split("\n")
    ends_with_newline = text.endswith("\n")
    if ends_with_newline:
        lines.pop()
    groups: list[tuple[list[list[str]], bool]] = []
    current: list[list[str]] = []
    for index, line in enumerate(lines):
        cells = line.split("\t")
        current.append(cells)
        terminated = index < len(lines) - 1 or ends_with_newline
        if len(cells) == 1 and terminated:
            groups.append((current, True))
            current = []
    if current:
        groups.append((current, ends_with_newline))
    return groups


class TabWriter:
    """Collects text and aligns it on ``flush`` (or use :func:`align` for one string)."""

    def __init__(self, minwidth: int = 10, tabwidth: int = 1, padding: int = 3, padchar: str = " ") -> None:
        self.minwidth = minwidth
        self.tabwidth = tabwidth
        self.padding = padding
        self.padchar = padchar
        self.pending: list[str] = []

    def write(self, text: str) -> None:
        self.pending.append(text)

    def flush(self) -> str:
        text = "".join(self.pending)
        self.pending = []
        return self.format(text)

    def format(self, text: str) -> str:
        out: list[str] = []
        for lines, newline_terminated in _blocks(text):
            widths: list[int] = []
            self._format(out, lines, widths, 0, len(lines), newline_terminated)
        return "".join(out)

    def _format(
        self, out: list[str], lines: list[list[str]], widths: list[int], line0: int, line1: int, last_nl: bool
    ) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            # lines[this] opens a block in this column: print the lines before it, then the block
            self._write_lines(out, lines, widths, line0, this, last_nl)
            line0 = this
            width = self.minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + self.padding)
                this += 1
            widths.append(width)
            self._format(out, lines, widths, line0, this, last_nl)
            widths.pop()
            line0 = this
        self._write_lines(out, lines, widths, line0, line1, last_nl)

    def _write_lines(
        self, out: list[str], lines: list[list[str]], widths: list[int], line0: int, line1: int, last_nl: bool
    ) -> None:
        for index in range(line0, line1):
            cells = lines[index]
            for column, cell in enumerate(cells):
                out.append(cell)
                if column < len(cells) - 1 and column < len(widths):
                    out.append(self.padchar * (widths[column] - len(cell)))
                elif column < len(cells) - 1:
                    out.append(self.padchar * self.padding)  # unreachable in Go's algorithm; be safe
            if index < len(lines) - 1 or last_nl:
                out.append("\n")


def align(text: str, minwidth: int = 10, tabwidth: int = 1, padding: int = 3, padchar: str = " ") -> str:
    """Align tab-separated ``text`` with Go's tabwriter rules (Docker's table settings by default)."""
    return TabWriter(minwidth, tabwidth, padding, padchar).format(text)
