"""Callbacks owed (charter P6 and V4): a pure obligation tracker.

No clock, no I/O: times come from the call records' own epoch seconds (the PBX's clock), from
the memo's ``at`` and from the ``now`` the shell passes to ``due_events``. Obligations are
immutable snapshots; the tracker keeps the open ones and returns every change it makes as an
``ObligationChange`` carrying the new snapshot, for a store or an alert to use. A snapshot has
a constant size however often it is joined, attempted or changed: it counts its history
(changes by kind, missed calls) and the store keeps the history itself. The tracker indexes
the open obligations (by key, number, staff owner, department and next due time), so a call
costs O(obligations of its number + log n) and a timer tick O(due ones · log n).

Rules (where the charter is silent, the choice is marked *chosen*):
- Created by a complete inbound customer call that was missed (``no_answer``,
  ``caller_abandoned``, ``busy`` or ``abandoned_in_queue``), from a caller number we can call
  back, that rang at least ``min_ring_seconds_for_obligation`` (busy calls never ring and are
  not subject to it; a caller who left a queue before any phone rang must have waited that
  long in it).
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
  owner or by any colleague in the owner's department (any member of the owning department
  when a department owns it): on time if the customer answered at or before ``due_at``, late
  otherwise (whatever ``due_events`` said yet); ``closed_by`` says who called back. The
  charter promises the caller a call back: when 201 is away and 202 of the same department
  calls the customer back, the customer was called back. A call from another department
  does not fulfil it. Unanswered attempts (by the same people) are recorded and do not
  fulfil.
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
import heapq
import operator
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from call_monitor.calls.model import CallRecord
from call_monitor.charter.obligations import (
    OPEN_STATES,
    Change,
    ChangeKind,
    Obligation,
    ObligationChange,
    ObligationState,
    OpenCounts,
    OwnerKind,
    Source,
    allows,
    at_epoch,
    bump,
    next_state,
    normalise_number,
)
from call_monitor.charter.rules import call_department
from call_monitor.charter.working_hours import WorkingHours, to_seoul
from call_monitor.config import CallbackSettings
from call_monitor.directory import Directory

OBLIGING_REASONS = frozenset(
    {"no_answer", "caller_abandoned", "busy", "pbx_restart", "abandoned_in_queue"}
)


# Earliest deadline first, then by id: the order of every listing (``(due_at, id)``).
_order: Callable[[Obligation], tuple[datetime, str]] = operator.attrgetter("due_at", "id")


# A timeline entry: (when, obligation id, the state it must still be in to be due then).
_Event = tuple[datetime, str, ObligationState]


def _next_event(obligation: Obligation) -> _Event | None:
    """When ``due_events`` has something to emit for ``obligation``, if ever."""
    state = obligation.state
    if allows(state, "reminder"):
        # min(): a reminder never comes after the deadline (overdue wins, see due_events).
        return (min(obligation.reminder_at, obligation.due_at), obligation.id, state)
    if allows(state, "overdue"):
        return (obligation.due_at, obligation.id, state)
    return None


# How many calls that changed obligations the tracker remembers to refuse them twice: the
# store's history beyond that is older than any stream replayed into it (a district office
# has a few hundred missed calls a day; ~100 bytes each).
APPLIED_CALLS_KEPT = 100_000


class CallbackTracker:
    """Open callback obligations and their state machine (see the module docstring); every
    change goes through :meth:`_apply`, which asks the table of legal changes
    (:data:`~call_monitor.charter.obligations.TRANSITIONS`) for the state after it.

    Indexes (all kept in step by :meth:`_put` and :meth:`_remove`): the open obligations by
    id, by (number, owner) for joins, by number for callbacks and inbound calls, by staff
    owner for the summaries, open and marked-overdue counts by department for the gauges,
    and a heap of the next reminder or deadline of each (lazy deletion: an entry whose
    obligation closed or moved on is skipped when it comes up, and the heap is rebuilt when
    such entries outnumber the live ones).
    """

    def __init__(
        self, settings: CallbackSettings, working_hours: WorkingHours, directory: Directory
    ) -> None:
        self.settings = settings
        self.working_hours = working_hours
        self.directory = directory
        self._open: dict[str, Obligation] = {}
        self._by_key: dict[tuple[str, str], str] = {}
        self._by_number: dict[str, dict[str, None]] = {}  # ordered sets of ids
        self._by_staff: dict[str, dict[str, None]] = {}
        self._open_count: dict[str | None, int] = {}  # by owner department
        self._overdue_count: dict[str | None, int] = {}  # state "overdue", by owner department
        self._timeline: list[_Event] = []  # a heap
        self._scheduled = 0  # open obligations with a next event: the live heap entries
        # The calls that changed an obligation, oldest first (an ordered set, bounded): a
        # call applied again (the same recording replayed, a stream delivered twice) changes
        # nothing. At-least-once input, exactly-once effect.
        self._applied_calls: dict[str, None] = {}

    # -- queries ------------------------------------------------------------------------

    def get(self, obligation_id: str) -> Obligation | None:
        return self._open.get(obligation_id)

    def open_obligations(self) -> list[Obligation]:
        """Every open obligation, earliest deadline first: O(n log n), for listings and
        checks; the per-call paths use the narrower queries below."""
        return sorted(self._open.values(), key=_order)

    def open_for_number(self, number: str) -> list[Obligation]:
        """The open obligations owed to ``number`` (normalised here), earliest deadline first."""
        return self._for_number(normalise_number(number))

    def open_for_staff(self, extension: str) -> list[Obligation]:
        """The open obligations staff member ``extension`` owns, earliest deadline first
        (not those of the department: :func:`~call_monitor.alerts.messages.summary_message`)."""
        ids = self._by_staff.get(extension, {})
        return sorted((self._open[i] for i in ids), key=_order)

    def counts_by_department(self, now: datetime) -> dict[str | None, OpenCounts]:
        """Open and past-due-at-``now`` obligations by owner department (``None``: unknown).

        Past due is marked ``overdue`` or ``due_at <= now`` though ``due_events`` has not
        marked it yet. O(departments + entries of the timeline due by ``now``): between timer
        ticks, only what fell due since the last one.
        """
        now = to_seoul(now)
        unmarked: dict[str | None, int] = {}
        seen: set[str] = set()
        timeline = self._timeline
        stack = [0] if timeline else []
        while stack:  # the heap's entries due by now: a subtree is pruned at its root
            index = stack.pop()
            event = timeline[index]
            if event[0] > now:
                continue
            stack += [c for c in (2 * index + 1, 2 * index + 2) if c < len(timeline)]
            obligation = self._open.get(event[1])
            if obligation is None or event != _next_event(obligation) or event[1] in seen:
                continue
            seen.add(event[1])
            if obligation.due_at <= now:
                department = obligation.owner_department
                unmarked[department] = unmarked.get(department, 0) + 1
        return {
            department: OpenCounts(
                count, self._overdue_count.get(department, 0) + unmarked.get(department, 0)
            )
            for department, count in self._open_count.items()
        }

    def next_event_at(self) -> datetime | None:
        """When ``due_events`` next has something to emit (the shell may sleep until then)."""
        timeline = self._timeline
        while timeline and not self._live(timeline[0]):
            heapq.heappop(timeline)
        return timeline[0][0] if timeline else None

    # -- inputs -------------------------------------------------------------------------

    def on_call(self, record: CallRecord) -> list[ObligationChange]:
        """Apply a finished call: create/join, attempt, fulfil or resolve obligations.

        A call that already changed an obligation (by its ``linkedid``, see
        :meth:`restore_applied`) changes nothing again.
        """
        if record.linkedid in self._applied_calls:
            return []
        changes = self._call_changes(record)
        if changes:
            self._remember(record.linkedid)
        return changes

    def restore_applied(self, linkedids: Iterable[str]) -> None:
        """The calls that already changed obligations (the store's history, oldest first),
        so that after a restart a call seen before is still not applied twice."""
        for linkedid in linkedids:
            self._remember(linkedid)

    def _remember(self, linkedid: str) -> None:
        self._applied_calls.pop(linkedid, None)
        self._applied_calls[linkedid] = None
        if len(self._applied_calls) > APPLIED_CALLS_KEPT:
            del self._applied_calls[next(iter(self._applied_calls))]

    def _call_changes(self, record: CallRecord) -> list[ObligationChange]:
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
        kind, department = self._memo_owner(obligation_id, owner)
        existing = self._find(key_number, owner)
        if existing is not None:
            return self._join_memo(existing, at, taken_by, caller_name=caller_name, matter=matter)
        return self._create(
            "memo",
            by=taken_by,
            obligation_id=obligation_id,
            number=key_number,
            number_raw=number,
            owner=owner,
            owner_kind=kind,
            department=department,
            source="memo",
            created_at=at,
            missed_calls=0,
            caller_name=caller_name,
            matter=matter,
            taken_by=taken_by,
        )

    def _memo_owner(self, obligation_id: str, owner: str) -> tuple[OwnerKind, str | None]:
        """A memo's owner: an extension (of its department) or a department."""
        if self.directory.is_staff(owner):
            return "staff", self.directory.department_of(owner)
        if owner in self.directory.settings.departments:
            return "department", owner
        raise ValueError(
            f"memo {obligation_id}: unknown owner {owner!r} (not an extension or department)"
        )

    def _join_memo(
        self,
        existing: Obligation,
        at: datetime,
        taken_by: str | None,
        *,
        caller_name: str,
        matter: str,
    ) -> ObligationChange:
        """A memo for an open obligation: what the obligation does not say yet, it takes
        from the memo."""
        return self._change(
            existing,
            "memo",
            at,
            "memo",
            by=taken_by,
            caller_name=existing.caller_name or caller_name,
            matter=existing.matter or matter,
            taken_by=existing.taken_by or taken_by,
        )

    def cancel(
        self, obligation_id: str, reason: str, by: str | None, at: datetime
    ) -> ObligationChange:
        """Close an open obligation by hand (a wrong number, a duplicate, a customer's wish)."""
        obligation = self._open.get(obligation_id)
        if obligation is None:
            raise KeyError(f"no open callback obligation {obligation_id!r}")
        return self._change(obligation, "cancelled", to_seoul(at), f"cancelled: {reason}", by=by)

    def due_events(self, now: datetime) -> list[ObligationChange]:
        """Reminder and overdue transitions due at ``now``, each at most once per obligation."""
        now = to_seoul(now)
        changes: list[ObligationChange] = []
        for obligation in self._due(now):
            if now >= obligation.due_at and allows(obligation.state, "overdue"):
                changes.append(
                    self._change(obligation, "overdue", obligation.due_at, "deadline passed")
                )
            elif now >= obligation.reminder_at and allows(obligation.state, "reminder"):
                changes.append(
                    self._change(obligation, "reminder", obligation.reminder_at, "deadline near")
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
            old = self._open.get(obligation.id)
            if old is not None and old.key != obligation.key:
                self._remove(old)
                self._unkey(old)
            self._put(obligation)
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
            # A caller who left a queue before any phone rang waited there instead.
            waited = record.ring_seconds or record.queue_wait_seconds or 0.0
            if waited < self.settings.min_ring_seconds_for_obligation:
                return None
        owner = self._owner_of_missed(record)
        if owner is None:
            return None
        owner_name, kind, department = owner
        end = record.ended_at if record.ended_at is not None else record.started_at
        at = at_epoch(end)
        cause = f"missed_call:{record.missed_reason}"
        existing = self._find(number, owner_name)
        if existing is not None:
            return self._change(
                existing,
                "joined",
                at,
                cause,
                linkedid=record.linkedid,
                missed_calls=existing.missed_calls + 1,
            )
        return self._create(
            cause,
            linkedid=record.linkedid,
            obligation_id=f"call-{record.linkedid}",
            number=number,
            number_raw=record.caller,
            owner=owner_name,
            owner_kind=kind,
            department=department,
            source="missed_call",
            created_at=at,
            missed_calls=1,
            caller_name=record.caller_name,
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
        placed = at_epoch(record.started_at)
        caller_department = self.directory.department_of(caller)
        changes: list[ObligationChange] = []
        for obligation in self._for_number(number):
            if placed < obligation.created_at:
                continue
            # The owner, or a colleague of the owner's department (of the owning one).
            colleague = caller_department is not None and (
                caller_department == obligation.owner_department
            )
            if caller != obligation.owner and not colleague:
                continue
            if record.answered_at is None:
                attempt = self._change(
                    obligation,
                    "attempt",
                    placed,
                    "callback_unanswered",
                    linkedid=record.linkedid,
                    by=caller,
                )
                changes.append(attempt)
                continue
            answered = at_epoch(record.answered_at)
            kind: ChangeKind = (
                "fulfilled_on_time" if answered <= obligation.due_at else "fulfilled_late"
            )
            changes.append(
                self._change(
                    obligation,
                    kind,
                    answered,
                    "callback_answered",
                    linkedid=record.linkedid,
                    by=caller,
                )
            )
        return changes

    def _inbound_answered(self, record: CallRecord) -> list[ObligationChange]:
        """The customer got through: obligations of the answering department are resolved."""
        number = normalise_number(record.caller)
        if not number or record.answered_at is None:
            return []
        answered = at_epoch(record.answered_at)
        answerer = record.answered_by
        answer_department = self.directory.department_of(answerer)
        changes: list[ObligationChange] = []
        for obligation in self._for_number(number):
            if answered < obligation.created_at:
                continue
            if obligation.owner_department is not None:
                reached = answer_department == obligation.owner_department
            else:
                reached = answerer == obligation.owner
            if not reached:
                continue
            resolved = self._change(
                obligation,
                "resolved_by_inbound",
                answered,
                "customer_called_again",
                linkedid=record.linkedid,
                by=answerer,
            )
            changes.append(resolved)
        return changes

    # -- bookkeeping ----------------------------------------------------------------------

    def _create(
        self,
        cause: str,
        *,
        linkedid: str | None = None,
        by: str | None = None,
        obligation_id: str,
        number: str,
        number_raw: str,
        owner: str,
        owner_kind: OwnerKind,
        department: str | None,
        source: Source,
        created_at: datetime,
        missed_calls: int,
        caller_name: str = "",
        matter: str = "",
        taken_by: str | None = None,
    ) -> ObligationChange:
        """A new obligation: its ``created`` change, at ``created_at``."""
        hours = self.working_hours
        due = hours.add(created_at, self.settings.due_working_seconds)
        reminder = max(
            created_at, hours.subtract(due, self.settings.reminder_before_working_seconds)
        )
        obligation = Obligation(
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
            missed_calls=missed_calls,
            caller_name=caller_name,
            matter=matter,
            taken_by=taken_by,
        )
        return self._apply(obligation, None, "created", created_at, cause, linkedid=linkedid, by=by)

    def _find(self, number: str, owner: str) -> Obligation | None:
        obligation_id = self._by_key.get((number, owner))
        return None if obligation_id is None else self._open.get(obligation_id)

    def _for_number(self, number: str) -> list[Obligation]:
        """The open obligations of a normalised number, earliest deadline first."""
        ids = self._by_number.get(number, {})
        return sorted((self._open[i] for i in ids), key=_order)

    def _due(self, now: datetime) -> list[Obligation]:
        """The open obligations with a reminder or a deadline at or before ``now``, each
        once; their timeline entries are taken off (``_put`` adds the next one)."""
        due: dict[str, Obligation] = {}
        timeline = self._timeline
        while timeline and timeline[0][0] <= now:
            event = heapq.heappop(timeline)
            if self._live(event):
                due[event[1]] = self._open[event[1]]
        # In deadline order, as a scan of every open obligation would take them.
        return sorted(due.values(), key=_order)

    def _live(self, event: _Event) -> bool:
        obligation = self._open.get(event[1])
        return obligation is not None and _next_event(obligation) == event

    def _change(
        self, obligation: Obligation, kind: ChangeKind, at: datetime, cause: str, **details: Any
    ) -> ObligationChange:
        """Apply a ``kind`` change to an open obligation (``details``: as :meth:`_apply`)."""
        return self._apply(obligation, obligation.state, kind, at, cause, **details)

    def _apply(
        self,
        obligation: Obligation,
        state: ObligationState | None,  # before the change; None: a new obligation
        kind: ChangeKind,
        at: datetime,
        cause: str,
        *,
        linkedid: str | None = None,
        by: str | None = None,
        **fields: Any,
    ) -> ObligationChange:
        """The one place an obligation changes: the table (``next_state``) gives the state
        after the change, or raises ``IllegalTransition``; an obligation it closes leaves
        the tracker. ``fields``: what else the change sets in the snapshot."""
        after = next_state(state, kind)
        change = Change(at, kind, after, cause, linkedid=linkedid, by=by)
        if after not in OPEN_STATES:
            fields.update(closed_at=at, closed_by=by, closing_call=linkedid)
        updated = dataclasses.replace(
            obligation,
            state=after,
            history_length=obligation.history_length + 1,
            kind_counts=bump(obligation.kind_counts, kind),
            **fields,
        )
        if after in OPEN_STATES:
            self._put(updated)
            self._by_key[updated.key] = updated.id
        else:
            self._remove(obligation)
            self._unkey(obligation)
            self._compact()
        return ObligationChange(updated, change)

    def _put(self, obligation: Obligation) -> None:
        """Add an open obligation to every index but the key's, or replace it there.

        The timeline gets an entry when the obligation's next event differs from the one
        it replaces (``_due`` takes the old entry off before a change that moves it).
        """
        old = self._open.get(obligation.id)
        if old is not None:
            self._remove(old)
        oid = obligation.id
        self._open[oid] = obligation
        self._by_number.setdefault(obligation.number, {})[oid] = None
        if obligation.owner_kind == "staff":
            self._by_staff.setdefault(obligation.owner, {})[oid] = None
        department = obligation.owner_department
        self._open_count[department] = self._open_count.get(department, 0) + 1
        if obligation.state == "overdue":
            self._overdue_count[department] = self._overdue_count.get(department, 0) + 1
        event = _next_event(obligation)
        if event is not None:
            self._scheduled += 1
            # The entry of the previous snapshot still stands when the event is the same.
            if old is None or _next_event(old) != event:
                heapq.heappush(self._timeline, event)

    def _remove(self, obligation: Obligation) -> None:
        """Take an open obligation out of every index but the key's."""
        oid = obligation.id
        del self._open[oid]
        _discard(self._by_number, obligation.number, oid)
        if obligation.owner_kind == "staff":
            _discard(self._by_staff, obligation.owner, oid)
        department = obligation.owner_department
        _decrement(self._open_count, department)
        if obligation.state == "overdue":
            _decrement(self._overdue_count, department)
        if _next_event(obligation) is not None:
            self._scheduled -= 1

    def _compact(self) -> None:
        """Rebuild the timeline once dead entries (of obligations that closed before their
        reminder or deadline came up) outnumber the live ones: amortised O(1) per close."""
        if len(self._timeline) > 2 * self._scheduled + 64:
            self._timeline = [
                event for event in map(_next_event, self._open.values()) if event is not None
            ]
            heapq.heapify(self._timeline)

    def _unkey(self, obligation: Obligation) -> None:
        """After ``obligation`` left: its (number, owner) points to another open one, if any."""
        key = obligation.key
        if self._by_key.get(key) != obligation.id:
            return
        del self._by_key[key]
        # Restored data may hold two open obligations of one key: index the other.
        for other in self._for_number(obligation.number):
            if other.key == key:
                self._by_key[key] = other.id
                break


def _discard(index: dict[str, dict[str, None]], key: str, obligation_id: str) -> None:
    ids = index.get(key)
    if ids is not None:
        ids.pop(obligation_id, None)
        if not ids:
            del index[key]


def _decrement(counts: dict[str | None, int], department: str | None) -> None:
    left = counts.get(department, 0) - 1
    if left > 0:
        counts[department] = left
    else:
        counts.pop(department, None)
