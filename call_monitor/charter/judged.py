"""A finished call with its charter verdict, and its JSON form: what ``replay --json`` prints,
one per line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from call_monitor.calls.model import CallRecord
from call_monitor.charter.rules import CallVerdict
from call_monitor.timefmt import iso_seoul


@dataclass(frozen=True, slots=True)
class JudgedCall:
    """What the pipeline hands on for each finished call: the store, the metrics, the
    callbacks and the call lines all take it."""

    record: CallRecord
    verdict: CallVerdict


def call_report(record: CallRecord, verdict: CallVerdict) -> dict[str, Any]:
    return {
        "kind": "call",
        "linkedid": record.linkedid,
        "direction": record.direction,
        "caller": record.caller,
        "caller_name": record.caller_name,
        "dialed": record.dialed,
        "staff": record.staff,
        "department": verdict.department,
        "started_at": iso_seoul(record.started_at),
        "answered_at": iso_seoul(record.answered_at),
        "ended_at": iso_seoul(record.ended_at),
        "rang": list(record.rang),
        "legs": [
            {
                "party": leg.party,
                "extension": leg.extension,
                "rang_at": iso_seoul(leg.rang_at),
                "answered_at": iso_seoul(leg.answered_at),
                "ended_at": iso_seoul(leg.ended_at),
                "hangup_cause": leg.hangup_cause,
                "after_answer": leg.after_answer,
            }
            for leg in record.legs
        ],
        "answered_by": record.answered_by,
        "picked_up": record.picked_up,
        "ring_seconds": record.ring_seconds,
        "rings": verdict.rings,
        "p1_met": verdict.p1_met,
        "apology_expected": verdict.apology_expected,
        "missed": record.missed,
        "missed_reason": record.missed_reason,
        "transfers": [
            {
                "kind": t.kind,
                "completed": t.completed,
                "from": t.from_ext,
                "to": t.to_ext,
                "other_department": v.other_department,
                "wait_seconds": v.wait_seconds,
                "target_ring_seconds": v.target_ring_seconds,
                "p4_met": v.p4_met,
            }
            for t, v in zip(record.transfers, verdict.transfers, strict=True)
        ],
        "hangup_first": record.hangup_first,
        "p7_met": verdict.p7_met,
        "judged": verdict.judged,
        "incomplete": record.incomplete,
        "definitions_version": verdict.definitions_version,
    }
