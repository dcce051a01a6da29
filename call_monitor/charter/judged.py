"""A finished call with its charter verdict; its one mapping (:func:`judged_values`: the
shapes :data:`JUDGED_CALL` and :data:`JUDGED_TRANSFER` merged), from which the store's rows
and the JSON form (what ``replay --json`` prints, one per line) come. Those two are built by
functions generated from the same shapes (``records.compile_mapping``), which read only the
values they keep."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from call_monitor.calls.model import CALL, LEG, TRANSFER, CallRecord
from call_monitor.charter.rules import CHECK, TRANSFER_VERDICT, VERDICT, CallVerdict
from call_monitor.records import Convert, Key, Shape, compile_mapping, merged, same
from call_monitor.timefmt import iso_seoul

# The stages a finished call passes through in the daemon (``daemon.pipeline``): events to
# calls, the charter rules, the metrics, the store, the callbacks, the call's line. A bug one
# call triggers is counted by stage (``callmon_pipeline_errors_total``).
PipelineStage = Literal["correlate", "judge", "metrics", "store", "callbacks", "report"]


@dataclass(frozen=True, slots=True)
class JudgedCall:
    """What the pipeline hands on for each finished call: the store, the metrics, the
    callbacks and the call lines all take it."""

    record: CallRecord
    verdict: CallVerdict


# The JSON keys, in the order of the lines printed so far (the golden files fix it).
CALL_REPORT: tuple[Key, ...] = (
    "linkedid",
    "direction",
    "caller",
    "caller_name",
    "dialed",
    "staff",
    "department",
    "started_at",
    "answered_at",
    "ended_at",
    "rang",
    "conference",
    "legs",
    "answered_by",
    "picked_up",
    "ring_seconds",
    "queue_wait_seconds",
    "rings",
    "p1_met",
    "apology_expected",
    "missed",
    "missed_reason",
    "after_dial",
    "voicemail_left",
    "transfers",
    "hangup_first",
    "talked",
    "p7_met",
    "judged",
    "incomplete",
    "definitions_version",
)
LEG_REPORT: tuple[Key, ...] = LEG.names
TRANSFER_REPORT: tuple[Key, ...] = (
    "kind",
    "external",
    "completed",
    ("from", "from_ext"),
    ("to", "to_ext"),
    "other_department",
    "wait_seconds",
    "target_ring_seconds",
    "p4_met",
)


# The shapes of a judged call's mapping, merged in this order (records.merged): the record's
# values, then the verdict's; a transfer's, then its verdict's (its wait and ring seconds).
JUDGED_CALL: tuple[Shape[Any], ...] = (CALL, VERDICT)
JUDGED_TRANSFER: tuple[Shape[Any], ...] = (TRANSFER, TRANSFER_VERDICT)


def check_verdict(record: CallRecord, verdict: CallVerdict) -> None:
    """``ValueError`` if the verdict is not the record's (another call's, or other transfers)."""
    if verdict.linkedid != record.linkedid:
        raise ValueError(
            f"verdict of {verdict.linkedid!r} submitted with the record of {record.linkedid!r}"
        )
    if len(verdict.transfers) != len(record.transfers):
        raise ValueError(
            f"call {record.linkedid!r}: {len(record.transfers)} transfers but "
            f"{len(verdict.transfers)} transfer verdicts"
        )


def judged_values(record: CallRecord, verdict: CallVerdict, time: Convert = same) -> dict[str, Any]:
    """The call's one mapping: the record's values and its verdict's, with ``legs``,
    ``transfers`` (each transfer's values with its verdict's) and ``checks`` as lists of
    mappings; times through ``time``.

    Raises ``ValueError`` if the verdict is not the record's."""
    check_verdict(record, verdict)
    values = merged(JUDGED_CALL, (record, verdict), time)
    values["legs"] = [LEG.values(leg, time) for leg in record.legs]
    values["transfers"] = [
        merged(JUDGED_TRANSFER, pair, time)
        for pair in zip(record.transfers, verdict.transfers, strict=True)
    ]
    values["checks"] = [CHECK.values(check, time) for check in verdict.checks]
    return values


# call_report's objects, generated from the shapes and the keys above (records.compile_mapping):
# what records.report would take from judged_values(record, verdict, iso_seoul), built directly.
_CALL_JSON = compile_mapping(
    JUDGED_CALL,
    ("kind", *CALL_REPORT),
    given=("kind", "legs", "transfers"),
    time=iso_seoul,
    name="call_json",
)
_LEG_JSON = compile_mapping((LEG,), LEG_REPORT, time=iso_seoul, name="leg_json")
_TRANSFER_JSON = compile_mapping(
    JUDGED_TRANSFER, TRANSFER_REPORT, time=iso_seoul, name="transfer_json"
)


def call_report(record: CallRecord, verdict: CallVerdict) -> dict[str, Any]:
    """The ``replay --json`` line of a call: its mapping's :data:`CALL_REPORT` keys, times
    ISO 8601 with the +09:00 offset."""
    check_verdict(record, verdict)
    return _CALL_JSON(
        record,
        verdict,
        kind="call",
        legs=[_LEG_JSON(leg) for leg in record.legs],
        transfers=[
            _TRANSFER_JSON(transfer, judged)
            for transfer, judged in zip(record.transfers, verdict.transfers, strict=True)
        ],
    )
