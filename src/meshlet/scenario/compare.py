"""Comparing a command's real output with the scenario's, through a normaliser.

Theory of operation
-------------------
Both outputs go through the same normaliser, which masks only what differs from one
run to the next, and the masked texts must then be equal. What is masked, and where:

- HTTP responses (``Compare.LINES``): the value of a ``date:`` header in HTTP-date
  form, and the milliseconds of ``x-envoy-upstream-service-time:``. Trailing blanks
  of a line and the blank line ending curl's ``-I`` output are layout, not content.
- kubectl tables (``Compare.TABLE``): AGE (``4m14s``), CLUSTER-IP (an IPv4 address)
  and, in a pod table, the two generated parts of a pod's name
  (``httpbin-5bbdbd6588-z9vbs`` → ``httpbin-<hash>``).
- istioctl's secret table (``Compare.TABLE_ROWS``): a generated serial number (twelve
  digits or more; ``1`` set by ``-set_serial 1`` stays), and the NOT AFTER / NOT BEFORE
  instants (RFC 3339). The instants are replaced by the validity period between them,
  which does not change between runs (24 h 2 min for ``default``, 3650 days for
  ``ROOTCA``, 365 days for the files) and so is compared.

Everything else must match: every header line and value, status lines, curl's error
line, ``command terminated with exit code N`` and the exit code itself, the header
row and every cell of a table. Tables are cut into cells where two or more spaces
separate them, and their layout is checked too: each row's cells start in the header's
columns, and the narrowest gap between columns is the tool's (3 for kubectl, 5 for
istioctl). The rows of ``TABLE_ROWS`` may come in any order (the proxy's), matched by
their first cell.

A comparison returns a ``Verdict`` whose reason names the first difference in one
line. Pure: text in, verdicts out.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from meshlet.scenario.steps import Command, Compare

__all__ = [
    "Table",
    "Verdict",
    "compare_output",
    "normalise_lines",
    "normalise_table",
    "parse_table",
]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of one check: PASS or FAIL, and why, in one line."""

    check: str
    passed: bool
    reason: str

    @property
    def label(self) -> str:
        return "PASS" if self.passed else "FAIL"


@dataclass(frozen=True, slots=True)
class Table:
    """A table cut into cells, with the columns' start offsets and narrowest gap."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    starts: tuple[int, ...]
    gap: int
    misaligned: str = ""  # the first row whose cells are not in the header's columns


_HTTP_DATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" \d{4} \d{2}:\d{2}:\d{2} GMT"
)
_LINE_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"^(date: ){_HTTP_DATE.pattern}$", re.IGNORECASE), r"\1<date>"),
    (re.compile(r"^(x-envoy-upstream-service-time: )\d+$", re.IGNORECASE), r"\1<ms>"),
)
_CELL_SPLIT = re.compile(r" {2,}")
_AGE = re.compile(r"^(?:\d+[smhdy])+$")
_IPV4 = re.compile(r"^(?:\d{1,3}\.){3}\d{1,3}$")
_POD_NAME = re.compile(r"^(?P<base>[a-z0-9]([-a-z0-9]*[a-z0-9])?)-[a-z0-9]{6,10}-[a-z0-9]{5}$")
_GENERATED_SERIAL = re.compile(r"^\d{12,}$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
VALIDITY = "VALID FOR"


def normalise_lines(text: str) -> list[str]:
    """The lines of an output, trailing blanks and blank edges removed, masks applied."""
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    masked = []
    for line in lines:
        text = line
        for pattern, replacement in _LINE_MASKS:
            text = pattern.sub(replacement, text)
        masked.append(text)
    return masked


def _cells(line: str) -> tuple[list[str], list[int]]:
    cells: list[str] = []
    starts: list[int] = []
    position = 0
    for piece in _CELL_SPLIT.split(line):
        start = line.index(piece, position) if piece else position
        cells.append(piece)
        starts.append(start)
        position = start + len(piece)
    return cells, starts


def parse_table(text: str) -> Table:
    """A tabwriter table: cells split on two or more spaces, its layout measured."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    if not lines:
        return Table((), (), (), 0)
    header, starts = _cells(lines[0])
    rows: list[tuple[str, ...]] = []
    misaligned = ""
    widths = [len(cell) for cell in header]
    for line in lines[1:]:
        cells, cell_starts = _cells(line)
        rows.append(tuple(cells))
        if not misaligned and cell_starts != starts:
            misaligned = line
        for index, cell in enumerate(cells[: len(widths)]):
            widths[index] = max(widths[index], len(cell))
    gaps = [starts[i + 1] - starts[i] - widths[i] for i in range(len(starts) - 1)]
    return Table(tuple(header), tuple(rows), tuple(starts), min(gaps, default=0), misaligned)


def _instant(text: str) -> datetime | None:
    if not _RFC3339.match(text):
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")


def _mask_cell(column: str, cell: str, pod_table: bool) -> str:
    if column == "AGE" and _AGE.match(cell):
        return "<age>"
    if column == "CLUSTER-IP" and _IPV4.match(cell):
        return "<ip>"
    if column == "NAME" and pod_table and (match := _POD_NAME.match(cell)):
        return f"{match.group('base')}-<hash>"
    if column == "SERIAL NUMBER" and _GENERATED_SERIAL.match(cell):
        return "<serial>"
    if column in ("NOT AFTER", "NOT BEFORE") and _instant(cell) is not None:
        return "<time>"
    return cell


def normalise_table(table: Table) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The header and rows with the run-dependent cells masked (and the validity period
    added when the table has NOT AFTER and NOT BEFORE)."""
    header = table.header
    pod_table = "READY" in header and "STATUS" in header
    period = "NOT AFTER" in header and "NOT BEFORE" in header
    rows = []
    for row in table.rows:
        masked = [
            _mask_cell(header[i] if i < len(header) else "", cell, pod_table)
            for i, cell in enumerate(row)
        ]
        if period and len(row) == len(header):
            after = _instant(row[header.index("NOT AFTER")])
            before = _instant(row[header.index("NOT BEFORE")])
            masked.append(str(after - before) if after and before else "?")
        rows.append(tuple(masked))
    return (*header, VALIDITY) if period else header, rows


def _quote(line: str) -> str:
    return f'"{line}"'


def _compare_lines(expected: Sequence[str], actual: Sequence[str]) -> str:
    matcher = difflib.SequenceMatcher(a=expected, b=actual, autojunk=False)
    for tag, e1, _e2, a1, _a2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if tag == "replace":
            return f"line {a1 + 1}: expected {_quote(expected[e1])}, got {_quote(actual[a1])}"
        if tag == "delete":
            return f"missing line {e1 + 1}: {_quote(expected[e1])}"
        return f"unexpected line {a1 + 1}: {_quote(actual[a1])}"
    return ""


def _row_difference(
    header: Sequence[str], expected: Sequence[str], actual: Sequence[str], name: str
) -> str:
    if len(actual) != len(expected):
        return f"row {name}: {len(actual)} cells, expected {len(expected)}"
    for column, want, got in zip(header, expected, actual, strict=True):
        if want != got:
            return f"row {name}: {column} is {_quote(got)}, expected {_quote(want)}"
    return ""


def _compare_tables(expected_text: str, actual_text: str, any_order: bool) -> str:
    expected, actual = parse_table(expected_text), parse_table(actual_text)
    if not actual.header:
        return "no table printed"
    if actual.header != expected.header:
        return f"header {' | '.join(actual.header)}, expected {' | '.join(expected.header)}"
    if actual.misaligned:
        return f"cells out of their columns: {_quote(actual.misaligned)}"
    if actual.rows and actual.gap != expected.gap:
        return f"columns {actual.gap} spaces apart, expected {expected.gap}"
    header, want = normalise_table(expected)
    _, got = normalise_table(actual)
    if any_order:
        want_by = {row[0]: row for row in want}
        got_by = {row[0]: row for row in got}
        missing = sorted(want_by.keys() - got_by.keys())
        if missing:
            return f"missing row {missing[0]}"
        unexpected = sorted(got_by.keys() - want_by.keys())
        if unexpected:
            return f"unexpected row {unexpected[0]}"
        if len(got) != len(want):
            return f"{len(got)} rows, expected {len(want)}"
        pairs = [(want_by[key], got_by[key]) for key in sorted(want_by)]
    else:
        if len(got) != len(want):
            names = ", ".join(row[0] for row in got) or "none"
            return f"{len(got)} rows ({names}), expected {len(want)}"
        pairs = list(zip(want, got, strict=True))
    for want_row, got_row in pairs:
        difference = _row_difference(header, want_row, got_row, want_row[0])
        if difference:
            return difference
    return ""


_COMPARERS: dict[Compare, Callable[[str, str], str]] = {
    Compare.LINES: lambda e, a: _compare_lines(normalise_lines(e), normalise_lines(a)),
    Compare.TABLE: lambda e, a: _compare_tables(e, a, any_order=False),
    Compare.TABLE_ROWS: lambda e, a: _compare_tables(e, a, any_order=True),
}


def compare_output(command: Command, output: str, exit_code: int) -> Verdict:
    """PASS when ``output`` (stdout and stderr as the user saw them) and ``exit_code`` are
    what the scenario shows for ``command``, after masking; else FAIL with the reason."""
    name = command.check or command.text.splitlines()[0]
    if command.compare is Compare.NONE:
        if exit_code != command.exit_code:
            return Verdict(name, False, f"exit code {exit_code}, expected {command.exit_code}")
        return Verdict(name, True, "succeeded")
    difference = _COMPARERS[command.compare](command.expected, output)
    if difference:
        return Verdict(name, False, difference)
    if exit_code != command.exit_code:
        return Verdict(name, False, f"exit code {exit_code}, expected {command.exit_code}")
    return Verdict(name, True, _what_matched(command.compare))


def _what_matched(compare: Compare) -> str:
    if compare is Compare.LINES:
        return "every line matches (date and ms masked)"
    if compare is Compare.TABLE:
        return "every row and column matches (names' hashes, IPs and AGE masked)"
    return "every row matches, validity periods included (instants and generated serials masked)"
