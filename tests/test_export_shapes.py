"""The export with the call shapes of definitions 2026.2 (issue 15): a park, a transfer to an
outside number, a call missed by a PBX restart, one abandoned in a queue, one that went to
voicemail after the ringing, and a conversation the PBX cut (``hangup_first: pbx``): every
sheet and format shows them, counted as the definitions say, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from call_monitor.calls.model import CallRecord, Leg, Transfer
from call_monitor.cli import main as cli_main
from call_monitor.config import Settings
from call_monitor.directory import Directory
from call_monitor.export.figures import COUNT_KEYS
from call_monitor.export.headers import HEADERS, SHEETS
from call_monitor.export.sheets import sheet_columns
from tests.backends import postgres_database
from tests.export_month import MONTH, at, by_hand, store_records

START = at(2026, 11, 10, 10)  # a Tuesday, working hours


def call(n: int, **fields: Any) -> CallRecord:
    """An inbound call to 203 (총무과) from a number of its own, ``n`` minutes after START."""
    start = START + 60 * n
    base: dict[str, Any] = {
        "linkedid": f"shape-{n}",
        "started_at": start,
        "direction": "inbound",
        "caller": f"0101234{n:04d}",
        "caller_name": f"Caller {n}",
        "dialed": "203",
        "ring_started_at": start,
        "ended_at": start + 50,
        "legs": [Leg("customer", None, None, start, start + 50)],
    }
    return CallRecord(**(base | fields))


def answered(n: int, transfer: Transfer | None = None, hangup: str = "caller") -> CallRecord:
    start = START + 60 * n
    return call(
        n,
        answered_at=start + 2,
        answered_by="203",
        talked=True,
        hangup_first=hangup,
        transfers=[] if transfer is None else [transfer],
    )


def shapes() -> list[CallRecord]:
    t = START
    return [
        # Parked by 203, retrieved by 201 (another department) 8 s later: P4 and P5 met.
        answered(
            0, Transfer("park", t + 20, "203", "201", True, None, None, t + 28, external=False)
        ),
        # Transferred to a mobile: 12 s to connect, P4 breached.
        answered(
            1,
            Transfer("blind", t + 80, "203", "01099998888", True, None, None, t + 92, True),
        ),
        # Ringing when the PBX restarted: missed, a callback owed.
        call(2, missed=True, missed_reason="pbx_restart", hangup_first="pbx"),
        # Left the queue after 40 s of music, no phone rang: missed, a callback owed.
        call(
            3,
            queue_joined_at=START + 180,
            ring_started_at=None,
            ended_at=START + 220,
            missed=True,
            missed_reason="abandoned_in_queue",
            hangup_first="caller",
        ),
        # Rang 15 s, then voicemail; the caller left a message 25 s later: no answer.
        call(
            4,
            ring_ended_at=START + 255,
            missed=True,
            missed_reason="no_answer",
            after_dial="voicemail",
            voicemail_left=True,
            hangup_first="caller",
        ),
        # A conversation cut by the PBX: P7 not judged.
        answered(5, hangup="pbx"),
    ]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[dict[str, Any]]]:
    def build(url: str) -> list[dict[str, Any]]:
        monkeypatch.setenv("CALLMON_STORE__URL", url)
        return asyncio.run(store_records(Settings(), shapes()))

    if request.param == "sqlite":
        yield build(f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}")
        return
    with postgres_database() as url:
        yield build(url)


def export(tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / f"nov.{'zip' if fmt == 'csv' else fmt}"
    capsys.readouterr()
    status = cli_main(["export", "--month", MONTH, "--format", fmt, "--out", str(out)])
    assert status == 0, capsys.readouterr().err
    return out


def test_new_shapes_in_every_sheet_and_format(
    store: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = store
    assert [line["missed_reason"] for line in lines] == [
        None,
        None,
        "pbx_restart",
        "abandoned_in_queue",
        "no_answer",
        None,
    ]
    expected = by_hand(lines, Directory(Settings().directory))[("office", None)]
    document = json.loads(export(tmp_path, "json", capsys).read_text("utf-8"))
    office = document["office"]
    for key in COUNT_KEYS:
        if not key.startswith(("callbacks_", "scored_")):
            assert office[key] == expected.get(key, 0), key
    assert office["transfers_park"] == 1
    assert office["transfers_external"] == 1
    assert office["transfers"] == 2
    assert office["p4_met"] == 1
    assert office["missed_pbx_restart"] == office["missed_abandoned_in_queue"] == 1
    assert office["missed_no_answer"] == 1
    # The three misses each owe a callback (none made: open at the month's end).
    assert office["callbacks_owed"] == office["callbacks_open"] == 3
    # P7: the two conversations the caller ended; not the one the PBX cut, not the misses.
    assert office["p7_checked"] == 2

    workbook = openpyxl.load_workbook(export(tmp_path, "xlsx", capsys))
    columns = [c.key for c in sheet_columns()["calls"]]
    calls = {
        row[columns.index("linkedid")]: row
        for row in workbook[SHEETS["ko"]["calls"]].iter_rows(min_row=2, values_only=True)
    }
    assert calls["shape-2"][columns.index("missed_reason")] == "교환기 재시작"
    assert calls["shape-2"][columns.index("hangup_first")] == "교환기"
    assert calls["shape-3"][columns.index("missed_reason")] == "대기열에서 끊음"
    assert calls["shape-3"][columns.index("queue_wait_seconds")] == 40.0
    assert calls["shape-3"][columns.index("ring_seconds")] is None  # no phone rang
    assert calls["shape-4"][columns.index("after_dial")] == "음성사서함"
    assert calls["shape-4"][columns.index("ring_seconds")] == 15.0
    assert calls["shape-5"][columns.index("hangup_first")] == "교환기"
    assert calls["shape-5"][columns.index("p7")] is None
    assert calls["shape-1"][columns.index("p4")] == "미충족"
    assert calls["shape-0"][columns.index("p4")] == "충족"
    assert calls["shape-0"][columns.index("p5")] == "충족"
    missed_columns = [c.key for c in sheet_columns()["missed"]]
    missed = list(workbook[SHEETS["ko"]["missed"]].iter_rows(min_row=2, values_only=True))
    assert {row[missed_columns.index("linkedid")] for row in missed} == {
        "shape-2",
        "shape-3",
        "shape-4",
    }
    assert all(row[missed_columns.index("obligation")] for row in missed)  # each owes one
    summary_columns = [c.key for c in sheet_columns()["summary"]]
    office_row = next(
        row
        for row in workbook[SHEETS["ko"]["summary"]].iter_rows(min_row=2, values_only=True)
        if row[0] == "전체"
    )
    for key in ("transfers_park", "transfers_external", "missed_pbx_restart"):
        assert office_row[summary_columns.index(key)] == 1, key
    definitions = "\n".join(
        f"{item} {value}"
        for item, value in workbook[SHEETS["ko"]["definitions"]].iter_rows(
            min_row=2, values_only=True
        )
    )
    for said in ("교환기 재시작", "대기열에서 끊음", "파크", "외부 번호", "동료", "음성사서함"):
        assert said in definitions, said

    with zipfile.ZipFile(export(tmp_path, "csv", capsys)) as archive:
        raw = next(archive.read(n) for n in archive.namelist() if "_calls_" in n)
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert table[0] == [HEADERS["ko"][key] for key in columns]
    rows = {row[columns.index("linkedid")]: row for row in table[1:]}
    assert rows["shape-3"][columns.index("missed_reason")] == "대기열에서 끊음"
    assert rows["shape-4"][columns.index("after_dial")] == "음성사서함"

    page = export(tmp_path, "html", capsys).read_text("utf-8")
    assert "교환기 재시작" in page  # the definitions, on the report too
