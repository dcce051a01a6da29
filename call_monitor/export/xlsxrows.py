"""Rows of an XLSX sheet written as the cell XML xlsxwriter would write, a batch at a time.

Why not xlsxwriter's ``write_number`` / ``write_string``: measured here, a cell costs
4.4-5.3 µs inside xlsxwriter in ``constant_memory`` mode (three regular expressions, a cell
object, a cell reference, an attribute list, a dispatch on the cell's class name), and a
month's calls sheet is 6-7 million cells: 28-45 s of the export for the cells alone,
against the 30 s of issue 11 (``benchmarks/export.py``; ``benchmarks/README.md`` has the
runs). Here a column's type is known before the first row, so each cell is one f-string,
and text is escaped only when a single search finds something to escape.

The XML is byte for byte what xlsxwriter writes for the same cells (``tests/
test_export_xlsxrows.py`` writes both ways and compares the sheets): numbers as
``{:.16G}``, text as inline strings with xlsxwriter's own escaping. It goes into
xlsxwriter's own ``constant_memory`` row file; the workbook, the styles, the header rows,
the charts, the file's assembly and everything else stay xlsxwriter's. What this touches
of xlsxwriter's inside (the row file, ``_write_single_row``, ``_check_dimensions``,
``previous_row``, the escaping helpers) is checked by that test on the version installed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from xlsxwriter.format import Format
from xlsxwriter.utility import _preserve_whitespace, xl_col_to_name
from xlsxwriter.worksheet import Worksheet

# Makes one cell's XML from its value and its row's reference suffix ("2" for row 1),
# or "" for no cell (None, or text that is empty).
Cell = Callable[[Any, str], str]
ROWS_PER_WRITE = 1000  # rows joined into one write to the row file

# Text needing more than copying: XML's specials, control characters and text that looks
# like their _xHHHH_ escape, the two non-characters, leading or trailing white space.
_CAREFUL = re.compile(r"[&<>\x00-\x08\x0b-\x1f\ufffe\uffff]|_x[0-9a-fA-F]{4}_|^\s|\s$")


def number_cell(col: int, number_format: Format | None, unset: str | None = None) -> Cell:
    """A number cell in column ``col``; for ``None``, no cell, or the text ``unset``."""
    ref = xl_col_to_name(col)
    style = "" if number_format is None else f' s="{number_format._get_xf_index()}"'
    unset_cell = None if unset is None else text_cell(col)

    def cell(value: Any, row: str) -> str:
        if value is None:
            return "" if unset_cell is None else unset_cell(unset, row)
        if not math.isfinite(value):
            # Not a number a sheet can hold (xlsxwriter would refuse the whole file): no
            # cell, as for an unknown value. The store never holds one; this is a guard.
            return ""
        return f'<c r="{ref}{row}"{style}><v>{value:.16G}</v></c>'

    return cell


def text_cell(col: int) -> Cell:
    """A text cell in column ``col`` (``None`` or empty: no cell), an inline string."""
    ref = xl_col_to_name(col)

    def cell(value: Any, row: str) -> str:
        if not value:
            return ""
        text = value if value.__class__ is str else str(value)
        if _CAREFUL.search(text) is None:
            return f'<c r="{ref}{row}" t="inlineStr"><is><t>{text}</t></is></c>'
        return _careful_text(ref, row, text)

    return cell


def _careful_text(ref: str, row: str, text: str) -> str:
    """As xlsxwriter's inline string: its own escaping, in its order."""
    escaped = Worksheet._escape_control_characters(text)
    space = ' xml:space="preserve"' if _preserve_whitespace(escaped) else ""
    escaped = escaped.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f'<c r="{ref}{row}" t="inlineStr"><is><t{space}>{escaped}</t></is></c>'


class StreamedSheet(Worksheet):  # type: ignore[misc]  # xlsxwriter has no type hints
    """xlsxwriter's worksheet (``constant_memory``), plus rows written a batch at a time."""

    def write_rows(
        self, first_row: int, rows: Iterable[Sequence[Any]], cells: Sequence[Cell]
    ) -> int:
        """Write ``rows`` from ``first_row`` on, cell ``i`` of each by ``cells[i]``; the
        number of the row after the last one written."""
        if not self.constant_memory or self.row_info or self.excel_version != 2007:
            # Rows with their own format or height, or Excel 2010 row attributes: not
            # what this writes; never asked by the export (a programming error).
            raise RuntimeError("write_rows: constant_memory sheets with plain rows only")
        self._write_single_row(first_row)  # what xlsxwriter still holds (the header row)
        next_row = first_row
        last_with_cells = -1
        batch: list[str] = []
        write = self.row_data_fh.write
        for number, values in enumerate(rows, start=first_row):
            row = str(number + 1)  # the row's reference: 1-based
            xml = "".join([cell(value, row) for cell, value in zip(cells, values, strict=True)])
            if xml:  # xlsxwriter writes no element for a row without cells
                batch.append(f'<row r="{row}">{xml}</row>')
                last_with_cells = number
                if len(batch) == ROWS_PER_WRITE:
                    write("".join(batch))
                    batch.clear()
            next_row = number + 1
        write("".join(batch))
        if last_with_cells >= 0:
            self._check_dimensions(last_with_cells, 0)  # the sheet's <dimension>
        self.previous_row = next_row
        return next_row
