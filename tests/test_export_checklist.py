"""The export's checklist figures: checklists submitted through the ChecklistService on calls
of the exported month (and one of the month before), every figure against the one computed
by hand from the answers given, in the JSON, the XLSX and the CSV, on SQLite and PostgreSQL;
"not scored" only where nothing was."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from call_monitor.checklist.files import load_form
from call_monitor.checklist.scoring import Given
from call_monitor.cli import main as cli_main
from call_monitor.config import Settings
from call_monitor.directory import Directory
from call_monitor.export.headers import SHEETS
from call_monitor.export.sheets import sheet_columns
from call_monitor.store.checklist_service import ChecklistService
from call_monitor.store.engine import create_engine
from tests.test_export import Built, export, export_json, month, read_zip

__all__ = ["month"]  # the fixture: a month on SQLite and one on PostgreSQL

FORM = load_form()
CHECKED = "heard on the recording"  # a comment: a measured item may then be answered freely
ALWAYS = ("p1_greeting", "p3_repeat", "p3_explain", "p7_anything_else", "p7_closing")


def answers(no: tuple[str, ...] = (), **extra: str) -> dict[str, Given]:
    """Yes to every item asked of every call, no to ``no``, and ``extra`` (item: answer)."""
    given = {item: Given("no" if item in no else "yes") for item in ALWAYS}
    given["p1_rings"] = Given(extra.pop("p1_rings", "yes"), CHECKED)
    given["p7_caller_hangs_up"] = Given("yes", CHECKED)
    given |= {item: Given(answer, CHECKED) for item, answer in extra.items()}
    return given


async def score_month(url: str) -> None:
    engine = create_engine(url)
    service = ChecklistService(engine, FORM, Directory(Settings().directory))
    try:
        # syn-b, ring 3 (6.0 s): P1 no, an apology given. Weights yes 2+2+3+1+1 + p2 1 +
        # p7 hang-up 1 = 11 of 12 (p1_rings, 1, no): 91.67.
        await service.submit("syn-b", answers(p1_rings="no", p2_apology="yes"), "sup")
        # syn-e, blind transfer to 204 (another department) in 9.99 s: the procedure not
        # explained (critical, 3) and no direct number (2): yes 2+2+1+1 + p1 1 + p4 1 +
        # p7 1 = 9 of 14: 64.29.
        await service.submit(
            "syn-e",
            answers(no=("p3_explain",), p4_transfer_wait="yes", p5_direct_number="no"),
            "sup",
        )
        # syn-c: all yes (100.0), then corrected: the request not repeated (2): 9 of 11,
        # 81.82; the correction counts.
        await service.submit("syn-c", answers(), "sup")
        await service.submit("syn-c", answers(no=("p3_repeat",)), "sup", reason="re-heard")
        # syn-a started in October: not this month's.
        await service.submit("syn-a", answers(), "sup")
    finally:
        await engine.dispose()


# By hand, from the answers above (item: answered yes or no, of them yes), in the form's order.
ITEMS = {
    "p1_greeting": (3, 3),
    "p1_rings": (3, 2),
    "p2_apology": (1, 1),
    "p3_repeat": (3, 2),
    "p3_explain": (3, 2),
    "p4_briefing": (0, 0),  # asked of no call (no attended transfer scored): na
    "p4_transfer_wait": (1, 1),
    "p5_direct_number": (1, 0),
    "p6_memo": (0, 0),
    "p7_anything_else": (3, 3),
    "p7_closing": (3, 3),
    "p7_caller_hangs_up": (3, 3),
}
SCORED = {
    "scored_calls": 3,
    "checklist_mean_score": round((91.67 + 64.29 + 81.82) / 3, 2),
    "checklist_yes_share": 20 / 24,
    "checklist_items": {item: {"answered": a, "yes": y} for item, (a, y) in ITEMS.items()},
    "apology_given_share": 1.0,
    "p5_direct_number_share": 0.0,
}
UNSCORED = {
    "scored_calls": 0,
    "checklist_mean_score": None,
    "checklist_yes_share": None,
    "checklist_items": {},
    "apology_given_share": None,
    "p5_direct_number_share": None,
}


def checklist_part(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in SCORED}


def test_checklist_figures_are_the_ones_computed_by_hand(
    month: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = month
    asyncio.run(score_month(url))
    document = export_json(tmp_path / "nov.json", capsys)
    assert sum(ITEMS[item][0] for item in ITEMS) == 24
    assert checklist_part(document["office"]) == SCORED
    for row in document["departments"]:
        want = SCORED if row["department"] == "총무과" else UNSCORED
        assert checklist_part(row) == want, row["department"]
    for row in document["staff"]:
        want = SCORED if row["staff"] == "203" else UNSCORED
        assert checklist_part(row) == want, row["staff"]
    # One department: the office row is that department's.
    one = export_json(tmp_path / "one.json", capsys, "--department", "총무과")
    assert checklist_part(one["office"]) == SCORED
    other = export_json(tmp_path / "other.json", capsys, "--department", "민원여권과")
    assert checklist_part(other["office"]) == UNSCORED
    # October: syn-a only.
    october = export_json(tmp_path / "oct.json", capsys, "--month", "2026-10")
    assert october["office"]["scored_calls"] == 1
    assert october["office"]["checklist_mean_score"] == 100.0


def test_checklist_in_the_sheets_and_not_scored_only_where_nothing_was(
    month: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = month
    asyncio.run(score_month(url))
    workbook = openpyxl.load_workbook(export(tmp_path / "nov.xlsx", "xlsx", capsys))
    names = [c.key for c in sheet_columns()["summary"]]
    summary = list(workbook[SHEETS["ko"]["summary"]].iter_rows(min_row=2, values_only=True))
    scored_keys = ("checklist_mean_score", "checklist_yes_share", "apology_given_share")
    for row in summary:
        who = (row[names.index("level")], row[names.index("department")], row[names.index("staff")])
        values = [row[names.index(key)] for key in scored_keys]
        if who in (("부서", "총무과", None), ("담당자", "총무과", "203"), ("전체", None, None)):
            assert values == [SCORED[key] for key in scored_keys], who
        else:
            assert values == ["평가 없음"] * 3, who
    office = next(row for row in summary if row[0] == "전체")
    assert office[names.index("p5_direct_number_share")] == 0.0
    items = list(workbook[SHEETS["ko"]["checklist"]].iter_rows(min_row=2, values_only=True))
    columns = [c.key for c in sheet_columns()["checklist"]]
    assert len(items) == 3 * len(ITEMS)  # 총무과, the office, 203
    apology = [row for row in items if row[columns.index("checklist_item")] == "p2_apology"]
    assert [row[columns.index("level")] for row in apology] == ["부서", "전체", "담당자"]
    assert all(row[columns.index("clause")] == "P2" for row in apology)
    assert all("양해" in row[columns.index("question")] for row in apology)
    repeat = next(row for row in items if row[columns.index("checklist_item")] == "p3_repeat")
    assert repeat[columns.index("item_answered") :] == (3, 2, pytest.approx(2 / 3))
    # The CSV: the same rows; unscored departments say so in words.
    files = read_zip(export(tmp_path / "nov.zip", "csv", capsys))
    raw = next(raw for name, raw in files.items() if "_checklist_" in name)
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert len(table) - 1 == len(items)
    summary_csv = next(raw for name, raw in files.items() if "_summary_" in name)
    rows = list(csv.reader(io.StringIO(summary_csv.decode("utf-8-sig"), newline="")))[1:]
    mean = names.index("checklist_mean_score")
    assert {row[mean] for row in rows} == {"평가 없음", str(SCORED["checklist_mean_score"])}
    html = export(tmp_path / "nov.html", "html", capsys).read_text("utf-8")
    assert f"{SCORED['checklist_mean_score']:.2f}" in html
    assert "83.3%" in html  # the office's share of "yes"


def test_a_bad_checklist_form_is_one_line_naming_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f'[checklist]\nform = "{tmp_path / "missing.toml"}"\n', encoding="utf-8")
    capsys.readouterr()
    out = tmp_path / "nov.json"
    status = cli_main(
        [
            "export",
            "--config",
            str(config),
            "--month",
            "2026-11",
            "--format",
            "json",
            "--out",
            str(out),
        ]
    )
    assert status == 1
    error = capsys.readouterr().err
    assert error.startswith("call-monitor export: checklist.form: ")
    assert error.count("\n") == 1  # one line, no traceback
    assert not out.exists()
