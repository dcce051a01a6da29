"""Charter clauses P1, P2, P4, P5 and P7 measured on a finished call. Pure.

Definitions (the README quotes them):
- Ring time ``t``: from the first staff phone ringing for this caller to the first answer.
- Rings: the caller hears ring n start at (n-1) x period (period = on + off, 3 s in Korea),
  so a call answered after t seconds was answered on ring floor(t / period) + 1.
- P1 met: rings <= max_rings_p1 (2), i.e. t < 6 s with the Korean cadence.
- P2 apology expected: rings >= apology_from_ring (3). Whether it was said is the checklist's.
- P4: per transfer, the customer's wait from the transfer start (Hold, BlindTransfer or the
  transfer feature) to the moment the customer talks with the colleague; met if
  < transfer_limit_seconds (10 s). An abandoned or failed transfer is not met.
- P5: a transfer whose target is in another department than the transferring staff member;
  judged on the same wait.
- P7 met: the caller hung up first; breached if staff did; not judged if unknown.
Only complete inbound customer calls are judged (internal calls too if configured).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from call_monitor.calls.model import CallRecord, Transfer
from call_monitor.config import CharterSettings
from call_monitor.directory import Directory
from call_monitor.records import Shape

Clause = Literal["P1", "P2", "P4", "P5", "P7"]
CLAUSES: tuple[Clause, ...] = get_args(Clause)
CheckResult = Literal["met", "breached"]  # a Check's met, as the metrics label it


@dataclass(frozen=True, slots=True)
class Check:
    """One clause judged on one call: met or breached, attributed to a staff member."""

    clause: Clause
    met: bool
    staff: str | None
    department: str | None


CHECK: Shape[Check] = Shape(Check)


@dataclass(frozen=True, slots=True)
class TransferVerdict:
    wait_seconds: float | None
    target_ring_seconds: float | None
    other_department: bool | None
    p4_met: bool | None


TRANSFER_VERDICT: Shape[TransferVerdict] = Shape(TransferVerdict)


@dataclass(frozen=True, slots=True)
class CallVerdict:
    linkedid: str
    definitions_version: str
    department: str | None
    judged: bool  # counted against the charter (complete customer call)
    # None and (): not measured (see :func:`unjudged`).
    rings: int | None = None
    p1_met: bool | None = None
    apology_expected: bool | None = None
    p7_met: bool | None = None
    transfers: tuple[TransferVerdict, ...] = ()
    checks: tuple[Check, ...] = ()


VERDICT: Shape[CallVerdict] = Shape(CallVerdict)


def rings_heard(ring_seconds: float, charter: CharterSettings) -> int:
    """The ring the call was answered on: floor(t / period) + 1."""
    return math.floor(ring_seconds / charter.ring_period_seconds) + 1


def call_department(record: CallRecord, directory: Directory) -> str | None:
    """The department a call belongs to: who answered, else who placed or was dialled."""
    for extension in (record.answered_by, record.staff, record.dialed, *record.rang):
        department = directory.department_of(extension)
        if department is not None:
            return department
    return None


def judge(record: CallRecord, charter: CharterSettings, directory: Directory) -> CallVerdict:
    department = call_department(record, directory)
    judged = not record.incomplete and (
        record.direction == "inbound"
        or (record.direction == "internal" and charter.count_internal_calls)
    )
    # Rings are reported for missed calls too (how long the caller waited); P1 and P2
    # are judged on answered calls only.
    # The staff side answers only on inbound and internal calls; an outbound call's
    # answer and hang-up are the customer's, so P1, P2 and P7 are not asked of it.
    staff_answers = record.direction in ("inbound", "internal")
    ring_seconds = record.ring_seconds
    # An infinite ring time (times no PBX sends) has no ring number: not judged, not a crash.
    rings = (
        None
        if ring_seconds is None or not math.isfinite(ring_seconds)
        else rings_heard(ring_seconds, charter)
    )
    answered_rings = rings if record.answered and staff_answers else None
    p1_met = None if answered_rings is None else answered_rings <= charter.max_rings_p1
    apology = None if answered_rings is None else answered_rings >= charter.apology_from_ring
    p7_met = (
        None
        if record.hangup_first == "unknown" or not staff_answers
        else record.hangup_first == "caller"
    )
    transfers = tuple(_judge_transfer(t, charter, directory) for t in record.transfers)

    checks: list[Check] = []
    if judged:
        answerer = record.answered_by
        answer_dept = directory.department_of(answerer) or department
        if p1_met is not None:
            checks.append(Check("P1", p1_met, answerer, answer_dept))
        for transfer, verdict in zip(record.transfers, transfers, strict=True):
            if verdict.p4_met is None:
                continue
            from_dept = directory.department_of(transfer.from_ext) or department
            checks.append(Check("P4", verdict.p4_met, transfer.from_ext, from_dept))
            if verdict.other_department:
                checks.append(Check("P5", verdict.p4_met, transfer.from_ext, from_dept))
        if p7_met is not None and record.answered:
            last = _last_staff(record)
            last_dept = directory.department_of(last) or department
            checks.append(Check("P7", p7_met, last, last_dept))
    return CallVerdict(
        linkedid=record.linkedid,
        definitions_version=charter.definitions_version,
        department=department,
        judged=judged,
        rings=rings,
        p1_met=p1_met,
        apology_expected=apology,
        p7_met=p7_met,
        transfers=transfers,
        checks=tuple(checks),
    )


def unjudged(record: CallRecord, charter: CharterSettings) -> CallVerdict:
    """The verdict of a call :func:`judge` failed on (a bug the call triggered): the call is
    still stored and counted, measured against no clause."""
    unmeasured = TransferVerdict(None, None, None, None)
    return CallVerdict(
        record.linkedid,
        charter.definitions_version,
        department=None,
        judged=False,
        transfers=(unmeasured,) * len(record.transfers),  # one per transfer, as the store wants
    )


def _judge_transfer(
    transfer: Transfer, charter: CharterSettings, directory: Directory
) -> TransferVerdict:
    from_dept = directory.department_of(transfer.from_ext)
    to_dept = directory.department_of(transfer.to_ext)
    other = None if from_dept is None or to_dept is None else from_dept != to_dept
    wait = transfer.wait_seconds
    if wait is not None:
        p4_met: bool | None = wait < charter.transfer_limit_seconds
    else:
        # Started but the customer never reached the colleague: not connected in time.
        p4_met = False if transfer.to_ext is not None else None
    return TransferVerdict(wait, transfer.target_ring_seconds, other, p4_met)


def _last_staff(record: CallRecord) -> str | None:
    """The staff member on the line at the end: the last transfer target, else the answerer."""
    for transfer in reversed(record.transfers):
        if transfer.completed and transfer.to_ext is not None:
            return transfer.to_ext
    return record.answered_by
