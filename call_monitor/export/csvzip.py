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
from call_monitor.export.headers import HEADERS, SHEETS, Lang, word
from call_monitor.export.sheets import Column, sheet_columns
from call_monitor.export.text import neutralise

Convert = Callable[[Any], Any]


def converter(column: Column, not_scored: str, *, streamed: bool) -> Convert | None:
    """How a column's values are written (``None``: as they are; ``csv`` writes ``None`` as
    an empty field and a number as a number). Times come as Seoul text from the database
    (``sheets.seoul_time``). The program's own words ("text" columns) never start like a
    formula; the tests check every cell of every sheet."""
    if column.kind in ("rate", "scored_rate"):
        unscored = not_scored if column.kind == "scored_rate" else None
        return lambda value: unscored if value is None else round(value, 6)
    if column.kind == "scored_number":
        return lambda value: not_scored if value is None else value
    if column.kind in ("name", "stranger") and not streamed:
        # (The streamed sheets' text comes neutralised from the database: SqlWords.text.)
        # Text from outside the program: the directory, the store, a caller.
        return lambda value: neutralise(value) if value.__class__ is str else value
    return None


def write_csv_zip(data: ExportData, path: Path) -> None:
    lang = data.lang
    columns = sheet_columns()
    not_scored = neutralise(word(lang, "not_scored"))
    # Level 1: most of the size gain for a third of the time of the default level.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        # The streamed sheets first: the figures are counted meanwhile (ExportData.figures).
        # The calls asked for first, the missed calls written while the database makes
        # them. The files keep the sheets' order in their names.
        calls = data.calls("text")
        sheets: tuple[tuple[str, Callable[[], Iterable[list[Any]]]], ...] = (
            ("missed", lambda: data.missed("text")),
            ("calls", lambda: calls),
            ("summary", data.summary),
            ("checklist", data.checklist),
            ("definitions", data.definition_rows),
        )
        for key, rows_of in sheets:
            rows = rows_of()
            name = f"{SHEET_ORDER.index(key) + 1}_{key}_{SHEETS[lang][key]}.csv"
            with archive.open(name, "w") as raw:
                text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
                streamed = key in ("calls", "missed")
                _write_sheet(text, columns[key], rows, lang, not_scored, streamed=streamed)
                text.flush()
                text.detach()


def _write_sheet(
    text: io.TextIOWrapper,
    columns: Sequence[Column],
    rows: Iterable[list[Any]],
    lang: Lang,
    not_scored: str,
    *,
    streamed: bool,
) -> None:
    writer = csv.writer(text)
    writer.writerow([neutralise(HEADERS[lang][c.key]) for c in columns])
    # Only the columns that need it are converted: most cells go to csv as they are.
    converted = [
        (i, f) for i, c in enumerate(columns) if (f := converter(c, not_scored, streamed=streamed))
    ]
    for row in rows:
        for index, convert in converted:
            row[index] = convert(row[index])
        writer.writerow(row)
