"""``call-monitor export`` on a month built with ``replay --store`` plus synthetic calls at the
month's boundaries and the thresholds: every figure against the one counted by hand, the
XLSX and the CSV read back, the manifest verified, a threshold change, and the same JSON from
SQLite and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import re
import sys
import zipfile
from collections.abc import Iterator
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from call_monitor.cli import export as export_cli
from call_monitor.cli import main as cli_main
from call_monitor.config import Settings, StoreSettings
from call_monitor.directory import Directory
from call_monitor.export import build as export_build
from call_monitor.export.build import ExportRequest, gather
from call_monitor.export.figures import COUNT_KEYS, WAIT_KEYS, Scope
from call_monitor.export.headers import HEADERS, SHEETS
from call_monitor.export.judgement import Judgement
from call_monitor.export.month import Month
from call_monitor.export.run import export_month
from call_monitor.export.sheets import sheet_columns
from call_monitor.store.engine import create_engine
from tests.backends import postgres_database
from tests.export_month import HOSTILE_NAMES, MONTH, build_month, by_hand, callbacks_by_hand
from tests.loop_ticks import ticking

Built = tuple[str, list[dict[str, Any]]]
# The keys of every figures object that issue 11 lists, as it lists them.
ISSUE_KEYS = (
    "department staff inbound_calls answered missed incomplete p1_checked p1_met "
    "apology_expected transfers p4_met p5_transfers p5_met p7_checked p7_met "
    "callbacks_owed callbacks_on_time callbacks_late callbacks_open "
    "callbacks_resolved_by_inbound callbacks_cancelled scored_calls"
)

# The definitions the month was judged under when it was stored (the version in force).
STORED_VERSION = Settings().charter.definitions_version


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def month(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Built]:
    """The month in a store of each backend: (store URL, the calls' JSON lines)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}"
        yield url, build_month(url, monkeypatch, capsys)
        return
    with postgres_database() as url:
        yield url, build_month(url, monkeypatch, capsys)


def export(out: Path, fmt: str, capsys: pytest.CaptureFixture[str], *extra: str) -> Path:
    capsys.readouterr()
    status = cli_main(["export", "--month", MONTH, "--format", fmt, "--out", str(out), *extra])
    assert status == 0, capsys.readouterr().err
    return out


def export_json(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(export(path, "json", capsys, *extra).read_text("utf-8"))
    return document


def test_every_figure_is_the_one_counted_by_hand(
    month: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, lines = month
    document = export_json(tmp_path / "nov.json", capsys)
    directory = Directory(Settings().directory)
    expected = by_hand(lines, directory)
    expected[("office", None)].update(callbacks_by_hand(lines))
    # The synthetic calls as designed (the recordings' part is counted from their lines).
    synthetic = by_hand(
        [line for line in lines if str(line.get("linkedid")).startswith("syn-")], directory
    )
    assert {k: v for k, v in synthetic[("총무과", None)].items() if v} == {
        "inbound_calls": 6,
        "answered": 4,
        "missed": 1,
        "missed_no_answer": 1,
        "incomplete": 1,
        "p1_checked": 4,
        "p1_met": 3,
        "rings_1": 2,
        "rings_2": 1,
        "rings_3": 1,
        "apology_expected": 1,
        "transfers": 2,
        "p4_met": 1,
        "transfers_blind": 1,
        "transfers_attended": 1,
        "p5_transfers": 2,
        "p5_met": 1,
        "p7_checked": 2,
        "p7_met": 2,
        "p4_wait_median_seconds": 9.99,
        "p4_wait_p90_seconds": 10.0,
    }
    assert document["month"] == MONTH
    assert document["definitions_version"] == STORED_VERSION
    assert set(document) >= {"generated_at", "office", "departments", "staff"}
    office = document["office"]
    required = set(ISSUE_KEYS.split())
    for row in [office, *document["departments"], *document["staff"]]:
        assert required <= set(row)
        assert all(type(row[key]) is int for key in COUNT_KEYS)
    assert office["scored_calls"] == 0
    assert office["checklist_mean_score"] is None
    want = expected[("office", None)]
    for key in (*COUNT_KEYS, *WAIT_KEYS):
        assert office[key] == want.get(key, 0), key
    departments = {row["department"]: row for row in document["departments"]}
    staff = {(row["department"], row["staff"]): row for row in document["staff"]}
    assert all(row["staff"] is None for row in departments.values())
    for (department, extension), want in expected.items():
        if department == "office":
            continue
        row = departments[department] if extension is None else staff[(department, extension)]
        for key in (*COUNT_KEYS, *WAIT_KEYS):
            if not key.startswith("callbacks_"):
                assert row[key] == want.get(key, 0), (department, extension, key)
    # P6 by owner: the synthetic missed call is 203's, open at the month's end.
    assert staff[("총무과", "203")]["callbacks_open"] == 1
    assert sum(row["callbacks_owed"] for row in departments.values()) == office["callbacks_owed"]


def test_xlsx_reads_back_with_types_and_sheet_names(
    month: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = export(tmp_path / "nov.xlsx", "xlsx", capsys)
    workbook = openpyxl.load_workbook(path)
    assert workbook.sheetnames == [
        SHEETS["ko"][key] for key in ("summary", "calls", "missed", "checklist", "definitions")
    ]
    for key, columns in sheet_columns().items():
        sheet = workbook[SHEETS["ko"][key]]
        assert [cell.value for cell in sheet[1]] == [HEADERS["ko"][c.key] for c in columns]
        assert sheet.freeze_panes == "A2"
    summary = workbook[SHEETS["ko"]["summary"]]
    names = [c.key for c in sheet_columns()["summary"]]
    office = next(row for row in summary.iter_rows(min_row=2) if row[0].value == "전체")
    document = export_json(tmp_path / "nov.json", capsys)
    for key in COUNT_KEYS:
        cell = office[names.index(key)]
        assert cell.value == document["office"][key], key
        assert cell.data_type == "n", key
    p1 = office[names.index("p1_rate")]
    assert p1.number_format == "0.0%"
    assert p1.value == pytest.approx(
        document["office"]["p1_met"] / document["office"]["p1_checked"]
    )
    assert len(summary._charts) == 5  # one per measured clause (openpyxl reads them back)
    calls = workbook[SHEETS["ko"]["calls"]]
    columns = [c.key for c in sheet_columns()["calls"]]
    rows = {row[columns.index("linkedid")].value: row for row in calls.iter_rows(min_row=2)}
    assert "syn-a" not in rows
    assert "syn-d" not in rows
    first = rows["syn-b"]
    started = first[columns.index("started_at")]
    assert started.is_date
    assert started.value == datetime(2026, 11, 1, 0, 0, 0, 100000)
    assert first[columns.index("ring_seconds")].value == 6.0
    assert first[columns.index("rings")].value == 3
    assert first[columns.index("p1")].value == "미충족"
    name = first[columns.index("caller_name")]
    assert name.value == HOSTILE_NAMES[0]
    assert name.data_type == "s"
    assert first[columns.index("number")].value == "010-****-2222"
    assert rows["syn-g"][columns.index("incomplete")].value == "예"


def read_zip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_csv_has_a_bom_korean_headers_masked_numbers_and_no_formulas(
    month: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = read_zip(export(tmp_path / "nov.zip", "csv", capsys))
    assert len(files) == 5
    tables = {}
    for name, raw in files.items():
        assert raw.startswith(b"\xef\xbb\xbf"), name
        key = name.split("_")[1]
        table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
        assert table[0] == [HEADERS["ko"][c.key] for c in sheet_columns()[key]]
        tables[key] = table
    calls = tables["calls"]
    columns = [c.key for c in sheet_columns()["calls"]]
    numbers = {row[columns.index("number")] for row in calls[1:]}
    assert numbers
    assert all(re.fullmatch(r"(0\d{1,2}-\*{4}-\d{4})?", n) for n in numbers), numbers
    assert not re.search(rb"01[016]\d{7,8}", b"".join(files.values()))  # no number in full
    names = {row[columns.index("caller_name")] for row in calls[1:]}
    for hostile in HOSTILE_NAMES:
        assert "'" + hostile in names
    for text in (cell for table in tables.values() for row in table for cell in row):
        assert not text.startswith(("=", "+", "-", "@", "\t", "\r")), text
    row = next(r for r in calls[1:] if r[columns.index("linkedid")] == "syn-b")
    assert row[columns.index("started_at")] == "2026-11-01 00:00:00.100"
    # A number as the database writes it: "6.0" from SQLite, "6" from PostgreSQL.
    assert float(row[columns.index("ring_seconds")]) == 6.0
    assert row[columns.index("rings")] == "3"
    other = next(r for r in calls[1:] if r[columns.index("linkedid")] == "syn-c")
    assert other[columns.index("ring_seconds")] == "5.99"


def test_manifest_hashes_match_and_verify_fails_on_a_changed_byte(
    month: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = export(tmp_path / "nov.xlsx", "xlsx", capsys)
    manifest_path = tmp_path / "nov.xlsx.manifest.json"
    manifest = json.loads(manifest_path.read_text("utf-8"))
    assert manifest["files"] == [
        {
            "name": "nov.xlsx",
            "bytes": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
    ]
    assert manifest["month"] == MONTH
    assert manifest["definitions_version"] == STORED_VERSION
    assert manifest["query"]["format"] == "xlsx"
    assert manifest["program_version"]
    calls = sum(
        1 for line in month[1] if line["kind"] == "call" and line["started_at"][:7] == MONTH
    )
    assert manifest["rows"]["calls"] == calls
    assert manifest["rows"]["summary"] > 0
    assert manifest["rows"]["definitions"] > 0
    assert cli_main(["export", "verify", str(manifest_path)]) == 0
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    capsys.readouterr()
    assert cli_main(["export", "verify", str(manifest_path)]) == 1
    assert "nov.xlsx" in capsys.readouterr().err


def test_a_threshold_change_keeps_the_stored_figures_unless_recomputed(
    month: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = export_json(tmp_path / "before.json", capsys)
    config = tmp_path / "stricter.toml"
    config.write_text(
        '[charter]\ndefinitions_version = "2027.1"\nmax_rings_p1 = 1\n'
        "transfer_limit_seconds = 9.99\n",
        encoding="utf-8",
    )
    same = export_json(tmp_path / "same.json", capsys, "--config", str(config))
    for key in ("office", "departments", "staff", "definitions_version"):
        assert same[key] == before[key], key
    again = export_json(tmp_path / "again.json", capsys, "--config", str(config), "--recompute")
    assert again["recomputed"] is True
    assert again["definitions_version"] == "2027.1"
    assert again["definitions_versions_stored"] == [STORED_VERSION]
    calls = [c for c in month[1] if c["kind"] == "call" and c["started_at"][:7] == MONTH]
    judged = [c for c in calls if c["judged"] and c["p1_met"] is not None]
    # Re-judged: P1 is now ring 1 only (t < 3 s); a 9.99 s wait is no longer under the limit.
    assert again["office"]["p1_met"] == sum(c["ring_seconds"] / 3.0 < 1 for c in judged)
    assert again["office"]["p1_met"] < before["office"]["p1_met"]
    waits = [t["wait_seconds"] for c in calls if c["judged"] for t in c["transfers"]]
    assert again["office"]["p4_met"] == sum(w is not None and w < 9.99 for w in waits)
    assert again["office"]["p4_met"] == before["office"]["p4_met"] - 1
    assert again["office"]["p1_checked"] == before["office"]["p1_checked"]
    # The definitions sheet says so, with both versions.
    files = read_zip(
        export(tmp_path / "again.zip", "csv", capsys, "--config", str(config), "--recompute")
    )
    definitions = next(raw for name, raw in files.items() if "definitions" in name).decode(
        "utf-8-sig"
    )
    assert "2027.1" in definitions
    assert STORED_VERSION in definitions
    assert "--recompute" in definitions
    # The calls sheet re-judged too: 5.99 s is ring 2, no longer within 1 ring.
    calls_csv = next(raw for name, raw in files.items() if "_calls_" in name)
    table = list(csv.reader(io.StringIO(calls_csv.decode("utf-8-sig"), newline="")))
    keys = [c.key for c in sheet_columns()["calls"]]
    rows = {row[keys.index("linkedid")]: row for row in table[1:]}
    assert rows["syn-c"][keys.index("rings")] == "2"
    assert rows["syn-c"][keys.index("p1")] == "미충족"
    assert rows["syn-e"][keys.index("p1")] == "충족"  # 2.0 s: ring 1
    assert rows["syn-e"][keys.index("p4")] == "미충족"  # 9.99 s, limit 9.99 s


def test_html_report_is_self_contained_and_escapes_names(
    month: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "hostile.toml"
    config.write_text(
        '[directory.staff.203]\nname = "Park"\ndepartment = "<img src=x onerror=alert(1)>"\n',
        encoding="utf-8",
    )
    page = export(tmp_path / "nov.html", "html", capsys, "--config", str(config)).read_text("utf-8")
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<img" not in page
    assert "<script" not in page
    assert not re.search(r"(src|href)=\"?(https?:)?//", page)  # no external asset
    assert page.count("<svg") >= 4
    assert "Malgun Gothic" in page
    assert "2026년 11월" in page
    # October has a call (31 Oct 23:59:59.9): month over month, a chart per clause more.
    assert "월별 추이" in page
    assert page.count("<svg") == 8
    assert "2026-10" in page


def test_sqlite_and_postgresql_give_the_same_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    documents = []
    with postgres_database() as pg_url:
        for url in (f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}", pg_url):
            build_month(url, monkeypatch, capsys)
            document = export_json(tmp_path / "nov.json", capsys)
            del document["generated_at"]
            documents.append(document)
    assert documents[0] == documents[1]
    assert documents[0]["office"]["inbound_calls"] > 0


@pytest.fixture
def sqlite_month(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Built:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}"
    return url, build_month(url, monkeypatch, capsys)


def test_one_department_in_english(
    sqlite_month: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = export_json(tmp_path / "all.json", capsys)
    one = export_json(tmp_path / "one.json", capsys, "--department", "총무과", "--lang", "en")
    (department,) = one["departments"]
    assert department == next(d for d in whole["departments"] if d["department"] == "총무과")
    assert {row["department"] for row in one["staff"]} == {"총무과"}
    for key in COUNT_KEYS:
        assert one["office"][key] == department[key], key
    files = read_zip(
        export(tmp_path / "one.zip", "csv", capsys, "--department", "총무과", "--lang", "en")
    )
    calls = next(raw for name, raw in files.items() if "_calls_" in name).decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(calls, newline="")))
    assert table[0] == [HEADERS["en"][c.key] for c in sheet_columns()["calls"]]
    column = [c.key for c in sheet_columns()["calls"]].index("department")
    assert {row[column] for row in table[1:]} == {"총무과"}
    assert len(table) - 1 == one["office"]["inbound_calls"]  # all its calls are inbound


async def test_export_from_async_code_leaves_the_event_loop_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}"
    await asyncio.to_thread(build_month, url, monkeypatch, capsys)
    settings = Settings(store=StoreSettings(url=url))
    request = ExportRequest(Month.parse(MONTH), "xlsx", tmp_path / "nov.xlsx")
    async with ticking() as gaps:
        manifest = await export_month(settings, request)
    assert manifest.is_file()
    assert openpyxl.load_workbook(tmp_path / "nov.xlsx").sheetnames[0] == "요약"
    assert len(gaps) > 5  # the loop went on ticking while the export ran


def test_a_department_name_with_quotes_is_a_name_not_sql(
    sqlite_month: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # On SQLite the reader process takes SQL text, the department a quoted literal in it.
    hostile = "총무과' OR '1'='1"
    for fmt, suffix in (("csv", "zip"), ("xlsx", "xlsx")):
        out = export(tmp_path / f"x.{suffix}", fmt, capsys, "--department", hostile)
        manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text("utf-8"))
        assert manifest["rows"]["calls"] == 0, fmt
        assert manifest["rows"]["missed"] == 0, fmt


def test_progress_bar_on_a_terminal_only(
    sqlite_month: Built,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[str, int]] = []
    real = export_cli.export_month_sync

    def spy(*args: Any) -> Path:
        *_, started = args
        seen.append(("terminal", started is not None))
        return real(*args)

    monkeypatch.setattr(export_cli, "export_month_sync", spy)
    export(tmp_path / "quiet.json", "json", capsys)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    capsys.readouterr()
    assert (
        cli_main(["export", "--month", MONTH, "--format", "csv", "--out", str(tmp_path / "b")]) == 0
    )
    assert "export" in capsys.readouterr().err  # the bar, drawn on stderr
    assert seen == [("terminal", False), ("terminal", True)]


def test_the_csv_lines_the_database_makes_are_the_sheets_rows(month: Built) -> None:
    """Every streamed sheet's CSV (its lines made in SQL: sheets.csv_lines) parses back to
    the rows the other formats take (cells made in SQL, the number masked in Python)."""
    url, _ = month
    settings = Settings(store=StoreSettings(url=url))
    request = ExportRequest(Month.parse(MONTH), "csv", Path("unused.zip"))
    loop = asyncio.new_event_loop()
    engine = create_engine(url)
    try:
        data = loop.run_until_complete(gather(request, settings, engine))
        try:
            for key, lines, rows in (
                ("calls", data.calls_csv(), data.calls("text")),
                ("missed", data.missed_csv(), data.missed("text")),
            ):
                parsed = list(csv.reader(io.StringIO("".join(lines), newline="")))
                expected = list(rows)
                assert len(parsed) == len(expected) > 0, key
                kinds = [c.kind for c in sheet_columns()[key]]
                for got, want in zip(parsed, expected, strict=True):
                    assert _as_csv_reads(got, kinds) == _as_csv_reads(want, kinds), key
        finally:
            data.close()
    finally:
        loop.run_until_complete(engine.dispose())
        loop.close()


def _as_csv_reads(row: list[Any], kinds: list[str]) -> list[Any]:
    """A row as compared: numbers as floats (the database writes "6" or "6.0"), empty for
    none, text as text."""
    return [
        (float(v) if v not in ("", None) else None) if kind in ("int", "seconds") else (v or "")
        for v, kind in zip(row, kinds, strict=True)
    ]


def test_the_calls_read_in_parts_are_the_calls_read_whole(
    sqlite_month: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    """The calls sheet read in stretches of the month (build.CALL_PARTS) has every call
    once, in start order, as read in one query."""
    sheets_of = {}
    for parts in (1, 4, 30):  # whole, the default, by the day
        monkeypatch.setattr(export_build, "CALL_PARTS", parts)
        files = read_zip(export(tmp_path / f"p{parts}.zip", "csv", capsys))
        sheets_of[parts] = next(raw for name, raw in files.items() if "_calls_" in name)
    assert sheets_of[1] == sheets_of[4] == sheets_of[30]
    rows = list(csv.reader(io.StringIO(sheets_of[4].decode("utf-8-sig"), newline="")))[1:]
    assert len(rows) > 10
    starts = [row[0] for row in rows]
    assert starts == sorted(starts)


def test_the_parts_of_a_month_cover_it_once() -> None:
    scope = Scope(Month.parse(MONTH), Judgement(Settings().charter, recompute=False))
    parts = [part.span() for part in scope.parts(4)]
    assert parts[0][0] == scope.month.start
    assert parts[-1][1] == scope.month.end
    assert all(a[1] == b[0] for a, b in pairwise(parts))  # [start, end): each instant once
    assert len({end - start for start, end in parts}) == 1
