"""``--format csv``: one CSV file per sheet, in a zip. UTF-8 with a BOM (so Excel reads the
Korean right), numbers written as numbers, every text cell neutralised against formula
injection (a caller named ``=HYPERLINK(...)`` arrives as text)."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from call_monitor.export.build import SHEETS as SHEET_ORDER
from call_monitor.export.build import ExportData
from call_monitor.export.headers import HEADERS, SHEETS, word
from call_monitor.export.sheets import Column, sheet_columns
from call_monitor.export.text import neutralise

Convert = Callable[[Any], Any]
LINES_PER_WRITE = 1000  # lines joined into one write


def converter(column: Column, not_scored: str) -> Convert | None:
    """How a column's values are written (``None``: as they are; ``csv`` writes ``None`` as
    an empty field and a number as a number). The program's own words ("text" columns)
    never start like a formula; the tests check every cell of every sheet. (The streamed
    sheets are not converted here: the database makes their lines, ``sheets.csv_lines``.)"""
    if column.kind in ("rate", "scored_rate"):
        unscored = not_scored if column.kind == "scored_rate" else None
        return lambda value: unscored if value is None else round(value, 6)
    if column.kind == "scored_number":
        return lambda value: not_scored if value is None else value
    if column.kind in ("name", "stranger"):
        # Text from outside the program: the directory, the store, a caller.
        return lambda value: neutralise(value) if value.__class__ is str else value
    return None


def write_csv_zip(data: ExportData, path: Path) -> None:
    lang = data.lang
    columns = sheet_columns()
    not_scored = neutralise(word(lang, "not_scored"))
    # Level 1: most of the size gain for a third of the time of the default level.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:

        def sheet(key: str) -> io.TextIOWrapper:
            """The sheet's file in the zip, its name keeping the sheets' order, its header
            row written."""
            name = f"{SHEET_ORDER.index(key) + 1}_{key}_{SHEETS[lang][key]}.csv"
            text = io.TextIOWrapper(archive.open(name, "w"), encoding="utf-8-sig", newline="")
            csv.writer(text).writerow([neutralise(HEADERS[lang][c.key]) for c in columns[key]])
            return text

        # The streamed sheets first (the figures are counted meanwhile: ExportData.figures),
        # their lines made by the database. The calls asked for first, the missed calls
        # written while the database makes them.
        calls = data.calls_csv()
        for key, lines in (("missed", data.missed_csv()), ("calls", calls)):
            with sheet(key) as text:
                _write_lines(text, lines)
        small: tuple[tuple[str, Callable[[], Iterable[list[Any]]]], ...] = (
            ("summary", data.summary),
            ("checklist", data.checklist),
            ("definitions", data.definition_rows),
        )
        for key, rows_of in small:
            with sheet(key) as text:
                _write_rows(text, columns[key], rows_of(), not_scored)


def _write_lines(text: io.TextIOWrapper, lines: Iterable[str]) -> None:
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) == LINES_PER_WRITE:
            text.write("".join(batch))
            batch.clear()
    text.write("".join(batch))


def _write_rows(
    text: io.TextIOWrapper, columns: Sequence[Column], rows: Iterable[list[Any]], not_scored: str
) -> None:
    writer = csv.writer(text)
    # Only the columns that need it are converted: most cells go to csv as they are.
    converted = [(i, f) for i, c in enumerate(columns) if (f := converter(c, not_scored))]
    for row in rows:
        for index, convert in converted:
            row[index] = convert(row[index])
        writer.writerow(row)
