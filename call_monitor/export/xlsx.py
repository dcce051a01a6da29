"""``--format xlsx``: one workbook, written row by row (xlsxwriter's ``constant_memory``:
each row goes to disk once written, so memory does not grow with the month).

Typed cells: counts and seconds as numbers, rates as numbers formatted as percentages, times
as Excel dates (Seoul wall clock); text is written as text, never parsed (no formula, URL or
number is made of a caller's name). Header rows frozen, columns sized, and on the summary
sheet a chart per measured clause over the department rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import xlsxwriter
from xlsxwriter.format import Format

from call_monitor.export.build import ExportData
from call_monitor.export.headers import HEADERS, SHEETS, Lang, word
from call_monitor.export.sheets import Column, sheet_columns
from call_monitor.export.xlsxrows import Cell, StreamedSheet, number_cell, text_cell

CHART_CLAUSES = ("p1_rate", "p4_rate", "p5_rate", "p6_rate", "p7_rate")
CHART_ROWS = 16  # rows a chart takes on the sheet
WORKBOOK_OPTIONS = {
    "constant_memory": True,  # each row on disk once written: memory does not grow
    # Text stays text: a caller named "=1+1" or "http://..." is not a formula/link.
    "strings_to_formulas": False,
    "strings_to_urls": False,
    "strings_to_numbers": False,
}


def write_xlsx(data: ExportData, path: Path) -> None:
    lang = data.lang
    workbook = xlsxwriter.Workbook(str(path), WORKBOOK_OPTIONS)
    try:
        formats = _formats(workbook)
        # The sheets in their order; the streamed ones filled first, while the figures are
        # counted (ExportData.figures): a sheet of constant_memory is written row by row,
        # each sheet on its own.
        sheets = {key: _sheet(workbook, lang, key, formats) for key in SHEETS[lang]}
        calls = data.calls("serial")  # asked for first: made while the missed are written
        _fill(sheets["missed"], "missed", data.missed("serial"), formats, lang)
        _fill(sheets["calls"], "calls", calls, formats, lang)
        _fill(sheets["summary"], "summary", data.summary(), formats, lang)
        _charts(workbook, sheets["summary"], lang, len(data.figures.departments) + 1)
        _fill(sheets["checklist"], "checklist", data.checklist(), formats, lang)
        _fill(sheets["definitions"], "definitions", data.definition_rows(), formats, lang)
    finally:
        workbook.close()


def _formats(workbook: xlsxwriter.Workbook) -> dict[str, Format]:
    return {
        "header": workbook.add_format({"bold": True, "text_wrap": True, "bg_color": "#DDEBF7"}),
        "rate": workbook.add_format({"num_format": "0.0%"}),
        "scored_rate": workbook.add_format({"num_format": "0.0%"}),
        "scored_number": workbook.add_format({"num_format": "0.00"}),
        "seconds": workbook.add_format({"num_format": "0.00"}),
        "datetime": workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss.000"}),
    }


def _cell(col: int, column: Column, formats: dict[str, Format], not_scored: str) -> Cell:
    """How a column's values are written: by its type, never guessed from the value."""
    kind = column.kind
    if kind in ("int", "seconds", "rate", "datetime", "scored_rate", "scored_number"):
        # A time comes as an Excel date serial (sheets.seoul_time): with a date format, it
        # is a date cell. A checklist figure nobody scored is the words "not scored".
        unscored = not_scored if kind.startswith("scored_") else None
        return number_cell(col, formats.get(kind), unscored)
    return text_cell(col)


def _sheet(
    workbook: xlsxwriter.Workbook, lang: Lang, key: str, formats: dict[str, Format]
) -> StreamedSheet:
    """The sheet ``key``, its columns sized, its header row written and frozen."""
    columns = sheet_columns()[key]
    sheet: StreamedSheet = workbook.add_worksheet(SHEETS[lang][key], StreamedSheet)
    for index, column in enumerate(columns):
        sheet.set_column(index, index, column.width)
    for index, column in enumerate(columns):
        sheet.write_string(0, index, HEADERS[lang][column.key], formats["header"])
    sheet.freeze_panes(1, 0)
    return sheet


def _fill(
    sheet: StreamedSheet,
    key: str,
    rows: Iterable[Sequence[Any]],
    formats: dict[str, Format],
    lang: Lang,
) -> None:
    columns = sheet_columns()[key]
    not_scored = word(lang, "not_scored")
    cells = [_cell(col, column, formats, not_scored) for col, column in enumerate(columns)]
    after_last = sheet.write_rows(1, rows, cells)
    sheet.autofilter(0, 0, max(after_last - 1, 1), len(columns) - 1)


def _charts(workbook: xlsxwriter.Workbook, sheet: StreamedSheet, lang: Lang, rows: int) -> None:
    """A bar chart per clause: its rate for each department and the office (rows 2..)."""
    columns = [c.key for c in sheet_columns()["summary"]]
    name = SHEETS[lang]["summary"]
    department = columns.index("department")
    first_free = len(columns) + 1
    for number, key in enumerate(CHART_CLAUSES):
        col = columns.index(key)
        chart = workbook.add_chart({"type": "bar"})
        chart.add_series(
            {
                "name": HEADERS[lang][key],
                "categories": [name, 1, department, rows, department],
                "values": [name, 1, col, rows, col],
                "data_labels": {"value": True, "num_format": "0%"},
            }
        )
        chart.set_title({"name": HEADERS[lang][key]})
        chart.set_x_axis({"min": 0, "max": 1, "num_format": "0%"})
        chart.set_legend({"none": True})
        sheet.insert_chart(1 + number * CHART_ROWS, first_free, chart)
