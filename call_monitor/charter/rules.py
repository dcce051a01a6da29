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
- P7 met: the caller hung up first; breached if staff did; judged only on calls where a staff
  member was bridged with the caller (``talked``), not judged if unknown.
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
    judged = _counted(record, charter)
    rings = _rings(record.ring_seconds, charter)
    # Rings are reported for missed calls too (how long the caller waited); P1 and P2
    # are judged on answered calls only.
    answered_rings = rings if record.answered and _staff_answers(record) else None
    p1_met = None if answered_rings is None else answered_rings <= charter.max_rings_p1
    apology = None if answered_rings is None else answered_rings >= charter.apology_from_ring
    p7_met = _p7_met(record)
    transfers = tuple(_judge_transfer(t, charter, directory) for t in record.transfers)
    checks = (
        _checks(record, p1_met, p7_met, transfers, directory=directory, department=department)
        if judged
        else ()
    )
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
        checks=checks,
    )


def _counted(record: CallRecord, charter: CharterSettings) -> bool:
    """Counted against the charter: a complete inbound call (internal too if configured)."""
    return not record.incomplete and (
        record.direction == "inbound"
        or (record.direction == "internal" and charter.count_internal_calls)
    )


def _staff_answers(record: CallRecord) -> bool:
    """The staff side answers only on inbound and internal calls; an outbound call's
    answer and hang-up are the customer's, so P1, P2 and P7 are not asked of it."""
    return record.direction in ("inbound", "internal")


def _rings(ring_seconds: float | None, charter: CharterSettings) -> int | None:
    """The ring reached after ``ring_seconds``; an infinite ring time (times no PBX sends)
    has no ring number: not judged, not a crash."""
    if ring_seconds is None or not math.isfinite(ring_seconds):
        return None
    return rings_heard(ring_seconds, charter)


def _p7_met(record: CallRecord) -> bool | None:
    """P7 is about how a conversation ends: judged only where staff talked with the caller
    (a caller giving up while it rings, or in voicemail, ends no conversation)."""
    if not record.talked or record.hangup_first in ("unknown", "pbx") or not _staff_answers(record):
        return None
    return record.hangup_first == "caller"


def _checks(
    record: CallRecord,
    p1_met: bool | None,
    p7_met: bool | None,
    transfers: tuple[TransferVerdict, ...],
    *,
    directory: Directory,
    department: str | None,
) -> tuple[Check, ...]:
    """A counted call's clauses: P1 to the answerer, P4 (and P5 across departments) to the
    transferring one, P7 to the last one on the line."""

    def check(clause: Clause, met: bool, staff: str | None) -> Check:
        # Attributed to the staff member's department, else the call's.
        return Check(clause, met, staff, directory.department_of(staff) or department)

    checks: list[Check] = []
    if p1_met is not None:
        checks.append(check("P1", p1_met, record.answered_by))
    for transfer, verdict in zip(record.transfers, transfers, strict=True):
        if verdict.p4_met is None:
            continue
        checks.append(check("P4", verdict.p4_met, transfer.from_ext))
        if verdict.other_department:
            checks.append(check("P5", verdict.p4_met, transfer.from_ext))
    if p7_met is not None:
        checks.append(check("P7", p7_met, _last_staff(record)))
    return tuple(checks)


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
