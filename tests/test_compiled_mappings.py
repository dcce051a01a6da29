"""The generated row and JSON functions (``TableMap.compile``, ``records.compile_mapping``)
give what the generic mapping gives (``judged_values``, ``Shape.values``, ``TableMap.row``,
``records.report``), key for key and in the same order, for every call of every shipped
recording and for the obligations and changes they make."""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any

import pytest

from call_monitor.calls.model import CallRecord
from call_monitor.charter.callbacks import CallbackTracker
from call_monitor.charter.judged import (
    CALL_REPORT,
    LEG_REPORT,
    TRANSFER_REPORT,
    JudgedCall,
    call_report,
    judged_values,
)
from call_monitor.charter.obligations import CHANGE, OBLIGATION, ObligationChange
from call_monitor.charter.working_hours import WorkingHours
from call_monitor.config import Settings
from call_monitor.daemon.pipeline import replay
from call_monitor.directory import Directory
from call_monitor.records import report
from call_monitor.store.models import CALLS, LEGS, TRANSFERS, VERDICTS, from_epoch
from call_monitor.store.obligations import CHANGES, OBLIGATIONS, change_row, obligation_row
from call_monitor.store.writer import call_rows, clause_ordinals
from call_monitor.timefmt import iso_seoul
from tests.recordings import SCENARIOS, streams
from tests.test_callbacks_service import tracker_changes


@cache
def recorded_calls() -> tuple[JudgedCall, ...]:
    """Every judged call of every recording, both views (``.ami`` and ``.full.ami``)."""
    return tuple(
        item
        for scenario in SCENARIOS
        for paths in streams(scenario).values()
        for item in replay(paths, Settings())
        if isinstance(item, JudgedCall)
    )


def items(rows: list[dict[str, Any]]) -> list[list[tuple[str, Any]]]:
    """The rows as lists of pairs: equal only with the same keys in the same order."""
    return [list(row.items()) for row in rows]


def test_the_recordings_have_every_kind_of_row() -> None:
    calls = recorded_calls()
    assert len(calls) > 100
    assert sum(len(call.record.transfers) for call in calls) >= 4
    assert all(call.record.legs for call in calls)
    assert any(len(call.verdict.checks) > 1 for call in calls)


@pytest.mark.parametrize("call", recorded_calls(), ids=lambda call: call.record.linkedid)
def test_generated_rows_are_the_mappings_rows(call: JudgedCall) -> None:
    record, verdict = call.record, call.verdict
    values = judged_values(record, verdict, from_epoch)
    linkedid = record.linkedid
    rows = call_rows(record, verdict)
    assert items([rows.call]) == items([CALLS.row(values)])
    assert items(rows.legs) == items(
        [LEGS.row(leg, linkedid=linkedid, position=i) for i, leg in enumerate(values["legs"])]
    )
    assert items(rows.transfers) == items(
        [
            TRANSFERS.row(transfer, linkedid=linkedid, position=i)
            for i, transfer in enumerate(values["transfers"])
        ]
    )
    ordinals = clause_ordinals(verdict.checks)
    assert items(rows.verdicts) == items(
        [
            VERDICTS.row(
                check,
                linkedid=linkedid,
                position=position,
                definitions_version=verdict.definitions_version,
            )
            for check, position in zip(values["checks"], ordinals, strict=True)
        ]
    )


@pytest.mark.parametrize("call", recorded_calls(), ids=lambda call: call.record.linkedid)
def test_the_generated_json_is_the_mappings_report(call: JudgedCall) -> None:
    values = judged_values(call.record, call.verdict, iso_seoul)
    values["legs"] = [report(leg, LEG_REPORT) for leg in values["legs"]]
    values["transfers"] = [report(transfer, TRANSFER_REPORT) for transfer in values["transfers"]]
    expected = {"kind": "call", **report(values, CALL_REPORT)}
    assert repr(call_report(call.record, call.verdict)) == repr(expected)


def test_call_rows_do_not_compute_what_they_do_not_store(monkeypatch: pytest.MonkeyPatch) -> None:
    call = recorded_calls()[0]
    assert "rang" in CALLS.not_stored

    def unread(_: CallRecord) -> list[str]:
        raise AssertionError("rang computed, not stored")

    monkeypatch.setattr(CallRecord, "rang", property(unread))
    assert call_rows(call.record, call.verdict).call["linkedid"] == call.record.linkedid
    with pytest.raises(AssertionError, match="rang computed"):
        judged_values(call.record, call.verdict)


def test_a_checks_position_is_its_ordinal_within_its_clause() -> None:
    _, verdict = next((c.record, c.verdict) for c in recorded_calls() if c.verdict.checks)
    checks = [*verdict.checks, *verdict.checks, verdict.checks[0]]
    ordinals = clause_ordinals(checks)
    assert ordinals == [
        sum(1 for earlier in checks[:i] if earlier.clause == check.clause)
        for i, check in enumerate(checks)
    ]
    assert ordinals[-1] == 2


def recorded_changes() -> list[ObligationChange]:
    """The tracker's changes for every recorded call, at the first reminder time, a week on
    (reminders, then overdue), and those of ``tracker_changes`` (a memo, a NUL in a name)."""
    settings = Settings()
    tracker = CallbackTracker(
        settings.callbacks, WorkingHours(settings.working_hours), Directory(settings.directory)
    )
    changes: list[ObligationChange] = []
    for call in recorded_calls():
        changes += tracker.on_call(call.record)
    first_reminder = min(c.obligation.reminder_at for c in changes if c.obligation.is_open)
    changes += tracker.due_events(first_reminder)
    changes += tracker.due_events(first_reminder + timedelta(days=7))
    return changes + tracker_changes()[1]


def test_generated_obligation_and_change_rows_are_the_mappings_rows() -> None:
    changes = recorded_changes()
    kinds = {change.change.kind for change in changes}
    assert {"created", "attempt", "reminder", "overdue"} <= kinds, kinds
    assert any(change.obligation.closed_at is not None for change in changes)
    assert any(change.obligation.source == "memo" for change in changes)
    assert any(change.obligation.reminded_at and change.obligation.overdue_at for change in changes)
    for change in changes:
        obligation, cause = change.obligation, change.change.cause
        closed_cause = None if obligation.closed_at is None else cause
        assert items([obligation_row(obligation, cause)]) == items(
            [OBLIGATIONS.row(OBLIGATION.values(obligation), closed_cause=closed_cause)]
        )
        assert items([change_row(change)]) == items(
            [
                CHANGES.row(
                    CHANGE.values(change.change),
                    obligation_id=obligation.id,
                    position=change.position,
                )
            ]
        )
