"""``--format csv``: one CSV file per sheet, in a zip. UTF-8 with a BOM (so Excel reads the
Korean right), numbers written as numbers, every text cell neutralised against formula
injection (a caller named ``=HYPERLINK(...)`` arrives as text)."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from call_monitor.export.build import ExportData
from call_monitor.export.headers import HEADERS, SHEETS, Lang, word
from call_monitor.export.sheets import Column, sheet_columns
from call_monitor.export.text import neutralise


def cell(value: Any, column: Column, not_scored: str) -> Any:
    """A value as the CSV writes it: numbers as numbers, times as Seoul wall-clock text."""
    if value is None:
        return not_scored if column.kind == "not_scored" else ""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if column.kind == "rate" and isinstance(value, float):
        return round(value, 6)
    if isinstance(value, str):
        return neutralise(value)
    return value


def write_csv_zip(data: ExportData, path: Path) -> None:
    lang = data.lang
    columns = sheet_columns()
    not_scored = neutralise(word(lang, "not_scored"))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        sheets: tuple[tuple[str, Iterable[list[Any]]], ...] = (
            ("summary", data.summary()),
            ("calls", data.calls()),
            ("missed", data.missed()),
            ("definitions", data.definition_rows()),
        )
        for number, (key, rows) in enumerate(sheets, start=1):
            name = f"{number}_{key}_{SHEETS[lang][key]}.csv"
            with archive.open(name, "w") as raw:
                text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
                _write_sheet(text, columns[key], rows, lang, not_scored)
                text.flush()
                text.detach()


def _write_sheet(
    text: io.TextIOWrapper,
    columns: Sequence[Column],
    rows: Iterable[list[Any]],
    lang: Lang,
    not_scored: str,
) -> None:
    writer = csv.writer(text)
    writer.writerow([neutralise(HEADERS[lang][c.key]) for c in columns])
    for row in rows:
        writer.writerow([cell(v, c, not_scored) for v, c in zip(row, columns, strict=True)])
