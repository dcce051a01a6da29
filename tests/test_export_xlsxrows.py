"""The export's own cell XML (``export/xlsxrows.py``) is byte for byte what xlsxwriter writes
for the same cells through its public ``write_number`` / ``write_string``: the same rows are
written both ways and the sheets' XML compared, for any text and any number."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import xlsxwriter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from call_monitor.export.xlsx import WORKBOOK_OPTIONS
from call_monitor.export.xlsxrows import Cell, StreamedSheet, number_cell, text_cell

# (kind, number format): a column of each kind the export writes.
Columns = tuple[tuple[str, str | None], ...]
COLUMNS: Columns = (
    ("text", None),
    ("number", "0.00"),
    ("number", None),
    ("unset", "0.0%"),  # a checklist figure: "not scored" in words when None
    ("text", None),
    ("number", "yyyy-mm-dd hh:mm:ss.000"),
)
# Without a column that always has a cell: rows without cells (none written).
SPARSE_COLUMNS = tuple(column for column in COLUMNS if column[0] != "unset")
NOT_SCORED = "채점 안 함"

texts = st.one_of(
    st.none(),
    st.just(""),
    st.text(),  # any character but surrogates: controls, non-characters, RTL marks...
    st.sampled_from(["_x0041_", " lead", "trail\t", "a&b<c>d\"e'", "=HYPERLINK(1)", "김\n철수"]),
)
numbers = st.one_of(
    st.none(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
)


def _cell_values(kind: str) -> st.SearchStrategy[Any]:
    return texts if kind == "text" else numbers


def _rows(columns: Columns) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    return st.lists(st.tuples(*(_cell_values(kind) for kind, _ in columns)), max_size=30)


def _workbook(path: Path, columns: Columns) -> tuple[Any, StreamedSheet, list[Any]]:
    workbook = xlsxwriter.Workbook(str(path), WORKBOOK_OPTIONS)
    header = workbook.add_format({"bold": True})
    formats = [workbook.add_format({"num_format": f}) if f else None for _, f in columns]
    sheet: StreamedSheet = workbook.add_worksheet("calls", StreamedSheet)
    for col in range(len(columns)):
        sheet.write_string(0, col, f"h{col}", header)
    # The style indices in one order for both ways (xlsxwriter numbers a format when first
    # used; the fast way when the column is made).
    header._get_xf_index()
    for number_format in formats:
        if number_format is not None:
            number_format._get_xf_index()
    return workbook, sheet, formats


def _fast(path: Path, rows: list[tuple[Any, ...]], columns: Columns = COLUMNS) -> None:
    workbook, sheet, formats = _workbook(path, columns)
    cells: list[Cell] = []
    for col, ((kind, _), number_format) in enumerate(zip(columns, formats, strict=True)):
        if kind == "text":
            cells.append(text_cell(col))
        else:
            cells.append(number_cell(col, number_format, NOT_SCORED if kind == "unset" else None))
    after_last = sheet.write_rows(1, rows, cells)
    assert after_last == len(rows) + 1
    sheet.autofilter(0, 0, max(after_last - 1, 1), len(columns) - 1)
    sheet.freeze_panes(1, 0)
    workbook.close()


def _public(path: Path, rows: list[tuple[Any, ...]], columns: Columns) -> None:
    workbook, sheet, formats = _workbook(path, columns)
    for number, row in enumerate(rows, start=1):
        for col, ((kind, _), value) in enumerate(zip(columns, row, strict=True)):
            if kind == "text":
                if value:
                    sheet.write_string(number, col, value)
            elif value is not None:
                sheet.write_number(number, col, value, formats[col])
            elif kind == "unset":
                sheet.write_string(number, col, NOT_SCORED)
    sheet.autofilter(0, 0, max(len(rows), 1), len(columns) - 1)
    sheet.freeze_panes(1, 0)
    workbook.close()


def _sheet_xml(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read("xl/worksheets/sheet1.xml")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), columns=st.sampled_from([COLUMNS, SPARSE_COLUMNS]))
def test_the_sheet_is_what_xlsxwriter_writes(
    tmp_path_factory: Any, data: st.DataObject, columns: Columns
) -> None:
    rows = data.draw(_rows(columns))
    folder = tmp_path_factory.mktemp("xlsxrows")
    _fast(folder / "fast.xlsx", rows, columns)
    _public(folder / "public.xlsx", rows, columns)
    assert _sheet_xml(folder / "fast.xlsx") == _sheet_xml(folder / "public.xlsx")


def test_values_and_types_read_back(tmp_path: Path) -> None:
    rows = [
        ('=HYPERLINK("x")', 5.99, 3, None, "a\x01b_x0041_", 46327.5),
        (None, None, None, 0.5, " 김 ", None),
        (None, None, None, None, None, None),
        ("끝", 10.0, -2, 1.0, "", 46328.0),
    ]
    _fast(tmp_path / "fast.xlsx", rows)
    sheet = openpyxl.load_workbook(tmp_path / "fast.xlsx").active
    got = [[cell.value for cell in row] for row in sheet.iter_rows(min_row=2, max_row=5)]
    assert got[0][:4] == ['=HYPERLINK("x")', 5.99, 3, NOT_SCORED]
    assert sheet.cell(2, 1).data_type == "s"  # text, never a formula
    # Excel's escapes, as xlsxwriter writes them (Excel shows "a\x01b_x0041_"; openpyxl
    # leaves them escaped).
    assert got[0][4] == "a_x0001_b_x005F_x0041_"
    assert got[1] == [None, None, None, 0.5, " 김 ", None]
    assert got[2] == [None, None, None, NOT_SCORED, None, None]
    assert got[3][:4] == ["끝", 10, -2, 1]
    assert sheet.cell(2, 6).is_date
    assert sheet.cell(2, 6).value.hour == 12
    assert sheet.dimensions == "A1:F5"


def test_a_number_that_is_not_finite_is_no_cell(tmp_path: Path) -> None:
    rows = [(None, math.nan, 7, -math.inf, None, math.inf)]
    _fast(tmp_path / "fast.xlsx", rows)
    sheet = openpyxl.load_workbook(tmp_path / "fast.xlsx").active
    assert [cell.value for cell in sheet[2]] == [None, None, 7, None, None, None]
