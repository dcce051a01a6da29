"""Callbacks owed (charter P6 and V4): a pure obligation tracker.

No clock, no I/O: times come from the call records' own epoch seconds (the PBX's clock), from
the memo's ``at`` and from the ``now`` the shell passes to ``due_events``. Obligations are
immutable snapshots; the tracker keeps the open ones and returns every change it makes as an
``ObligationChange`` carrying the new snapshot, for a store or an alert to use.

Rules (where the charter is silent, the choice is marked *chosen*):
- Created by a complete inbound customer call that was missed (``no_answer``,
  ``caller_abandoned`` or ``busy``), from a caller number we can call back, that rang at least
  ``min_ring_seconds_for_obligation`` (busy calls never ring and are not subject to it).
  Internal calls only if ``count_internal_calls``. A call picked up by a colleague is answered,
  not missed: the colleague's memo (``memo``) creates the obligation instead. *Chosen*: calls
  the monitor did not see whole (``incomplete``) and ``unavailable``/``failed`` ones (a PBX or
  phone fault, not an absent person) create nothing; nor does a call nobody can be made
  responsible for (no staff extension, group or known department).
- Owner: the staff extension, when one was dialled; else the department of the ring group or
  queue (``directory.groups``), or of the phones that rang when several did; else the one
  staff phone that rang.
- Created at the end of the missed call (the moment the customer gave up or was dropped),
  due ``due_working_seconds`` of working time later; reminder ``reminder_before_working_seconds``
  of working time before that (never before creation).
- One open obligation per (normalised number, owner). *Chosen*: a further missed call or memo
  joins it and keeps the first due time, since the customer has been waiting since the first
  call and a second call must not buy the owner more time.
- Fulfilled by an answered call placed after the obligation began, to that number, by the
  owner, or by any member of the owning department when a department owns it: on time if the
  customer answered at or before ``due_at``, late otherwise (whatever ``due_events`` said
  yet). Unanswered attempts are recorded and do not fulfil. *Chosen*: a colleague's
  callback does not fulfil a staff member's obligation (P6 names the responsible person).
- Resolved (``resolved_by_inbound``) by an answered inbound call from that number, after the
  obligation began, answered in the owner's department (or by the owner, when the owner's
  department is unknown): the customer got through, so nobody needs to call.
- Reminder and overdue are emitted by ``due_events(now)`` at most once each. *Chosen*: if the
  deadline has already passed when first checked (e.g. after a restart) only ``overdue`` is
  emitted; a reminder after the fact would only be noise.
- Closed obligations leave the tracker (the returned change holds the final snapshot).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from call_monitor.calls.model import CallRecord
from call_monitor.charter.rules import call_department
from call_monitor.charter.working_hours import WorkingHours, to_seoul
from call_monitor.config import CallbackSettings
from call_monitor.directory import Directory
from call_monitor.timefmt import SEOUL, iso_seoul

ObligationState = Literal[
    "open",
    "reminded",
    "overdue",
    "fulfilled_on_time",
    "fulfilled_late",
    "resolved_by_inbound",
    "cancelled",
]
OPEN_STATES: frozenset[ObligationState] = frozenset({"open", "reminded", "overdue"})
OwnerKind = Literal["staff", "department"]
Source = Literal["missed_call", "memo"]
ChangeKind = Literal[
    "created",
    "joined",
    "memo",
    "attempt",
    "reminder",
    "overdue",
    "fulfilled_on_time",
    "fulfilled_late",
    "resolved_by_inbound",
    "cancelled",
]

OBLIGING_REASONS = frozenset({"no_answer", "caller_abandoned", "busy"})

_NOT_DIGITS = re.compile(r"\D")


def normalise_number(raw: str | None) -> str:
    """One key per phone number: Korean national format, digits only; never raises.

    ``+82 10-1234-5678``, ``0082 10 1234 5678``, ``821012345678`` and ``010-1234-5678`` all
    give ``01012345678``; ``+82 2-450-1435`` gives ``024501435``. Anything else keeps its
    digits (extensions, foreign numbers, service numbers such as 1588-xxxx).
    """
    if not raw:
        return ""
    text = str(raw).strip()
    international = text.startswith("+")
    digits = _NOT_DIGITS.sub("", text)
    if digits.startswith("0082"):
        digits, international = digits[2:], True
    # A Korean domestic number always starts with 0, so 10+ digits starting with 82 is the
    # country code without its '+' (as some trunks present the caller ID).
    if digits.startswith("82") and (international or len(digits) >= 10):
        national = digits[2:]
        return national if national.startswith("0") else "0" + national
    return digits


@dataclass(frozen=True, slots=True)
class Attempt:
    """An unanswered callback attempt."""

    at: datetime  # when the call was placed
    by: str | None  # the staff extension that placed it
    linkedid: str


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of an obligation's history: what happened, when, why, and the state after."""

    at: datetime
    kind: ChangeKind
    state: ObligationState
    cause: str
    linkedid: str | None = None
    by: str | None = None


@dataclass(frozen=True, slots=True)
class Obligation:
    """A callback owed to one number by one staff member or department."""

    id: str  # stable: "call-<linkedid of the first missed call>" or the memo's id
    number: str  # normalised (``normalise_number``)
    number_raw: str  # as first seen
    owner: str  # a staff extension or a department name
    owner_kind: OwnerKind
    owner_department: str | None
    source: Source
    created_at: datetime
    due_at: datetime
    reminder_at: datetime
    state: ObligationState = "open"
    calls: tuple[str, ...] = ()  # linkedids of the missed calls joined here
    attempts: tuple[Attempt, ...] = ()
    caller_name: str = ""
    matter: str = ""  # memo: the customer's matter (민원내용)
    taken_by: str | None = None  # memo: who took it
    closed_at: datetime | None = None
    closed_by: str | None = None  # extension that called back / answered, or who cancelled
    closing_call: str | None = None  # linkedid of the call that closed it
    history: tuple[Change, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def key(self) -> tuple[str, str]:
        return (self.number, self.owner)


@dataclass(frozen=True, slots=True)
class ObligationChange:
    """A change the tracker made, with the obligation as it is after it."""

    obligation: Obligation
    change: Change

    @property
    def kind(self) -> ChangeKind:
        return self.change.kind

    @property
    def at(self) -> datetime:
        return self.change.at


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, SEOUL)


def _iso(at: datetime | None) -> str | None:
    return None if at is None else iso_seoul(at.timestamp())


def callback_report(obligation: Obligation) -> dict[str, Any]:
    """The obligation as one report line; times ISO 8601 with the +09:00 offset."""
    return {
        "kind": "callback",
        "owner": obligation.owner,
        "owner_department": obligation.owner_department,
        "number": obligation.number,
        "created_at": _iso(obligation.created_at),
        "due_at": _iso(obligation.due_at),
        "state": obligation.state,
        "attempts": len(obligation.attempts),  # unanswered callback attempts only
        "closed_at": _iso(obligation.closed_at),
    }


class CallbackTracker:
    """Open callback obligations and their state machine (see the module docstring)."""

    def __init__(
        self, settings: CallbackSettings, working_hours: WorkingHours, directory: Directory
    ) -> None:
        self.settings = settings
        self.working_hours = working_hours
        self.directory = directory
        self._open: dict[str, Obligation] = {}
        self._by_key: dict[tuple[str, str], str] = {}

    # -- queries ------------------------------------------------------------------------

    def get(self, obligation_id: str) -> Obligation | None:
        return self._open.get(obligation_id)

    def open_obligations(self) -> list[Obligation]:
        return sorted(self._open.values(), key=lambda o: (o.due_at, o.id))

    def next_event_at(self) -> datetime | None:
        """When ``due_events`` next has something to emit (the shell may sleep until then)."""
        times = [
            o.reminder_at if o.state == "open" else o.due_at
            for o in self._open.values()
            if o.state in ("open", "reminded")
        ]
        return min(times, default=None)

    # -- inputs -------------------------------------------------------------------------

    def on_call(self, record: CallRecord) -> list[ObligationChange]:
        """Apply a finished call: create/join, attempt, fulfil or resolve obligations."""
        changes: list[ObligationChange] = []
        counted_internal = record.direction == "internal" and self.settings.count_internal_calls
        if record.direction == "outbound" or counted_internal:
            changes += self._callback(record)
        if record.direction == "inbound" or counted_internal:
            if record.answered:
                changes += self._inbound_answered(record)
            else:
                change = self._missed(record)
                if change is not None:
                    changes.append(change)
        return changes

    def memo(
        self,
        *,
        obligation_id: str,  # chosen by the shell (a uuid), stable across restarts
        at: datetime,
        number: str,
        owner: str,
        taken_by: str | None,
        caller_name: str = "",
        matter: str = "",
    ) -> ObligationChange:
        """A colleague's memo (P6/V4): the owner (an extension or a department) owes a call.

        Joins the open obligation of the same number and owner if there is one.
        """
        at = to_seoul(at)
        key_number = normalise_number(number)
        if not key_number:
            raise ValueError(f"memo {obligation_id}: no callable number in {number!r}")
        if self.directory.is_staff(owner):
            kind: OwnerKind = "staff"
            department = self.directory.department_of(owner)
        elif owner in self.directory.settings.departments:
            kind, department = "department", owner
        else:
            raise ValueError(
                f"memo {obligation_id}: unknown owner {owner!r} (not an extension or department)"
            )
        existing = self._find(key_number, owner)
        if existing is not None:
            joined = dataclasses.replace(
                existing,
                caller_name=existing.caller_name or caller_name,
                matter=existing.matter or matter,
                taken_by=existing.taken_by or taken_by,
            )
            return self._record(joined, Change(at, "memo", joined.state, "memo", by=taken_by))
        obligation = self._new(
            obligation_id=obligation_id,
            number=key_number,
            number_raw=number,
            owner=owner,
            owner_kind=kind,
            department=department,
            source="memo",
            created_at=at,
            calls=(),
            caller_name=caller_name,
            matter=matter,
            taken_by=taken_by,
        )
        return self._record(obligation, Change(at, "created", "open", "memo", by=taken_by))

    def cancel(
        self, obligation_id: str, reason: str, by: str | None, at: datetime
    ) -> ObligationChange:
        """Close an open obligation by hand (a wrong number, a duplicate, a customer's wish)."""
        obligation = self._open.get(obligation_id)
        if obligation is None:
            raise KeyError(f"no open callback obligation {obligation_id!r}")
        at = to_seoul(at)
        return self._close(
            obligation, Change(at, "cancelled", "cancelled", f"cancelled: {reason}", by=by)
        )

    def due_events(self, now: datetime) -> list[ObligationChange]:
        """Reminder and overdue transitions due at ``now``, each at most once per obligation."""
        now = to_seoul(now)
        changes: list[ObligationChange] = []
        for obligation in self.open_obligations():
            if obligation.state in ("open", "reminded") and now >= obligation.due_at:
                change = Change(obligation.due_at, "overdue", "overdue", "deadline passed")
            elif obligation.state == "open" and now >= obligation.reminder_at:
                change = Change(obligation.reminder_at, "reminder", "reminded", "deadline near")
            else:
                continue
            changes.append(
                self._record(dataclasses.replace(obligation, state=change.state), change)
            )
        changes.sort(key=lambda c: (c.at, c.obligation.id))
        return changes

    def restore(self, obligations: Iterable[Obligation]) -> int:
        """Reload obligations from a store after a restart; closed ones are ignored.

        Returns how many were loaded. A reloaded obligation replaces one with the same id.
        """
        loaded = 0
        for obligation in sorted(obligations, key=lambda o: (o.created_at, o.id)):
            if not obligation.is_open:
                continue
            self._open[obligation.id] = obligation
            self._by_key.setdefault(obligation.key, obligation.id)
            loaded += 1
        return loaded

    # -- the rules ------------------------------------------------------------------------

    def _missed(self, record: CallRecord) -> ObligationChange | None:
        if not record.missed or record.incomplete or record.missed_reason not in OBLIGING_REASONS:
            return None
        number = normalise_number(record.caller)
        if not number:
            return None  # anonymous caller: nobody to call back
        if record.missed_reason != "busy":
            rang = record.ring_seconds or 0.0
            if rang < self.settings.min_ring_seconds_for_obligation:
                return None
        owner = self._owner_of_missed(record)
        if owner is None:
            return None
        owner_name, kind, department = owner
        end = record.ended_at if record.ended_at is not None else record.started_at
        at = _at(end)
        cause = f"missed_call:{record.missed_reason}"
        existing = self._find(number, owner_name)
        if existing is not None:
            joined = dataclasses.replace(existing, calls=(*existing.calls, record.linkedid))
            return self._record(
                joined, Change(at, "joined", joined.state, cause, linkedid=record.linkedid)
            )
        obligation = self._new(
            obligation_id=f"call-{record.linkedid}",
            number=number,
            number_raw=record.caller,
            owner=owner_name,
            owner_kind=kind,
            department=department,
            source="missed_call",
            created_at=at,
            calls=(record.linkedid,),
            caller_name=record.caller_name,
        )
        return self._record(
            obligation, Change(at, "created", "open", cause, linkedid=record.linkedid)
        )

    def _owner_of_missed(self, record: CallRecord) -> tuple[str, OwnerKind, str | None] | None:
        directory = self.directory
        if directory.is_staff(record.dialed):
            return record.dialed, "staff", directory.department_of(record.dialed)
        group_department = directory.settings.groups.get(record.dialed)
        rang = list(dict.fromkeys(record.rang))
        department = group_department
        if department is None and len(rang) > 1:
            department = call_department(record, directory)
        if department is not None:
            return department, "department", department
        if len(rang) == 1 and directory.is_staff(rang[0]):
            return rang[0], "staff", directory.department_of(rang[0])
        return None

    def _callback(self, record: CallRecord) -> list[ObligationChange]:
        """A call placed by staff: fulfils or counts as an attempt on matching obligations."""
        number = normalise_number(record.dialed)
        caller = record.staff
        if not number or caller is None:
            return []
        placed = _at(record.started_at)
        caller_department = self.directory.department_of(caller)
        changes: list[ObligationChange] = []
        for obligation in self.open_obligations():
            if obligation.number != number or placed < obligation.created_at:
                continue
            if obligation.owner_kind == "staff":
                allowed = caller == obligation.owner
            else:
                allowed = caller_department == obligation.owner
            if not allowed:
                continue
            if record.answered_at is None:
                attempt = Attempt(placed, caller, record.linkedid)
                updated = dataclasses.replace(obligation, attempts=(*obligation.attempts, attempt))
                change = Change(
                    placed,
                    "attempt",
                    updated.state,
                    "callback_unanswered",
                    linkedid=record.linkedid,
                    by=caller,
                )
                changes.append(self._record(updated, change))
                continue
            answered = _at(record.answered_at)
            on_time = answered <= obligation.due_at
            change = Change(
                answered,
                "fulfilled_on_time" if on_time else "fulfilled_late",
                "fulfilled_on_time" if on_time else "fulfilled_late",
                "callback_answered",
                linkedid=record.linkedid,
                by=caller,
            )
            changes.append(self._close(obligation, change))
        return changes

    def _inbound_answered(self, record: CallRecord) -> list[ObligationChange]:
        """The customer got through: obligations of the answering department are resolved."""
        number = normalise_number(record.caller)
        if not number or record.answered_at is None:
            return []
        answered = _at(record.answered_at)
        answerer = record.answered_by
        answer_department = self.directory.department_of(answerer)
        changes: list[ObligationChange] = []
        for obligation in self.open_obligations():
            if obligation.number != number or answered < obligation.created_at:
                continue
            if obligation.owner_department is not None:
                reached = answer_department == obligation.owner_department
            else:
                reached = answerer == obligation.owner
            if not reached:
                continue
            change = Change(
                answered,
                "resolved_by_inbound",
                "resolved_by_inbound",
                "customer_called_again",
                linkedid=record.linkedid,
                by=answerer,
            )
            changes.append(self._close(obligation, change))
        return changes

    # -- bookkeeping ----------------------------------------------------------------------

    def _new(
        self,
        *,
        obligation_id: str,
        number: str,
        number_raw: str,
        owner: str,
        owner_kind: OwnerKind,
        department: str | None,
        source: Source,
        created_at: datetime,
        calls: tuple[str, ...],
        caller_name: str = "",
        matter: str = "",
        taken_by: str | None = None,
    ) -> Obligation:
        hours = self.working_hours
        due = hours.add(created_at, self.settings.due_working_seconds)
        reminder = max(
            created_at, hours.subtract(due, self.settings.reminder_before_working_seconds)
        )
        return Obligation(
            id=obligation_id,
            number=number,
            number_raw=number_raw,
            owner=owner,
            owner_kind=owner_kind,
            owner_department=department,
            source=source,
            created_at=created_at,
            due_at=due,
            reminder_at=reminder,
            calls=calls,
            caller_name=caller_name,
            matter=matter,
            taken_by=taken_by,
        )

    def _find(self, number: str, owner: str) -> Obligation | None:
        obligation_id = self._by_key.get((number, owner))
        return None if obligation_id is None else self._open.get(obligation_id)

    def _record(self, obligation: Obligation, change: Change) -> ObligationChange:
        updated = dataclasses.replace(obligation, history=(*obligation.history, change))
        self._open[updated.id] = updated
        self._by_key[updated.key] = updated.id
        return ObligationChange(updated, change)

    def _close(self, obligation: Obligation, change: Change) -> ObligationChange:
        closed = dataclasses.replace(
            obligation,
            state=change.state,
            closed_at=change.at,
            closed_by=change.by,
            closing_call=change.linkedid,
            history=(*obligation.history, change),
        )
        self._open.pop(closed.id, None)
        if self._by_key.get(closed.key) == closed.id:
            del self._by_key[closed.key]
            # Restored data may hold two open obligations of one key: index the other.
            for other in self.open_obligations():
                if other.key == closed.key:
                    self._by_key[closed.key] = other.id
                    break
        return ObligationChange(closed, change)
