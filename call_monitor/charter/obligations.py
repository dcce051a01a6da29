"""Callback obligations as values: what is owed, to whom, and what happened to it.

Immutable snapshots (:class:`Obligation`) of a fixed size, however many calls joined or
attempts were made: the history itself (:class:`ObligationHistory`) lives in the store,
and the snapshot keeps only counts by change kind (``kind_counts``), enough for the rules,
the alerts' idempotency keys and the store's row positions. Which change may follow which
state is the table ``TRANSITIONS``; the tracker that applies the changes is
:class:`call_monitor.charter.callbacks.CallbackTracker`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple, get_args

from call_monitor.records import TIME, VALUE, Key, Shape, report
from call_monitor.timefmt import SEOUL, iso_seoul

OpenState = Literal["open", "reminded", "overdue"]
FulfilledState = Literal["fulfilled_on_time", "fulfilled_late"]  # called back and answered
ClosedState = Literal[FulfilledState, "resolved_by_inbound", "cancelled"]
ObligationState = Literal[OpenState, ClosedState]
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

# Every legal change of an obligation's state, in one place (the shape of h11's
# ``_state.py``): state -> {change kind -> state after it}. ``None`` is the state before the
# obligation exists. A kind missing from a state's row is illegal there (``next_state``
# raises ``IllegalTransition``); a closed state's row is empty: a closed obligation changes
# no more. Reminder and overdue each come at most once, and overdue may skip the reminder.
TRANSITIONS: Mapping[ObligationState | None, Mapping[ChangeKind, ObligationState]] = {
    None: {"created": "open"},
    "open": {
        "joined": "open",
        "memo": "open",
        "attempt": "open",
        "reminder": "reminded",
        # No reminder when the deadline has passed too (a restart, a late tick, no lead).
        "overdue": "overdue",
        "fulfilled_on_time": "fulfilled_on_time",
        # Late whatever ``due_events`` said yet: the timer may not have marked it overdue.
        "fulfilled_late": "fulfilled_late",
        "resolved_by_inbound": "resolved_by_inbound",
        "cancelled": "cancelled",
    },
    "reminded": {
        "joined": "reminded",
        "memo": "reminded",
        "attempt": "reminded",
        "overdue": "overdue",
        "fulfilled_on_time": "fulfilled_on_time",
        "fulfilled_late": "fulfilled_late",
        "resolved_by_inbound": "resolved_by_inbound",
        "cancelled": "cancelled",
    },
    "overdue": {
        "joined": "overdue",
        "memo": "overdue",
        "attempt": "overdue",
        # On time if answered by the deadline, though the call ended (and reached the
        # tracker) after the timer had marked the obligation overdue.
        "fulfilled_on_time": "fulfilled_on_time",
        "fulfilled_late": "fulfilled_late",
        "resolved_by_inbound": "resolved_by_inbound",
        "cancelled": "cancelled",
    },
    "fulfilled_on_time": {},
    "fulfilled_late": {},
    "resolved_by_inbound": {},
    "cancelled": {},
}
# Open: the states an obligation can still leave.
OPEN_STATES: frozenset[ObligationState] = frozenset(
    state for state, moves in TRANSITIONS.items() if state is not None and moves
)


class IllegalTransition(ValueError):
    """A change the obligation's state does not allow (see ``TRANSITIONS``): a bug."""

    def __init__(self, state: ObligationState | None, kind: ChangeKind) -> None:
        where = "before it exists" if state is None else f"in state {state!r}"
        super().__init__(f"an obligation {where} cannot take a {kind!r} change")
        self.state = state
        self.kind = kind


def next_state(state: ObligationState | None, kind: ChangeKind) -> ObligationState:
    """The state after a ``kind`` change of an obligation in ``state`` (``None``: a new one)."""
    target = TRANSITIONS.get(state, {}).get(kind)
    if target is None:
        raise IllegalTransition(state, kind)
    return target


def allows(state: ObligationState | None, kind: ChangeKind) -> bool:
    """Whether an obligation in ``state`` can take a ``kind`` change."""
    return kind in TRANSITIONS.get(state, {})


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
    """An unanswered callback attempt (an ``attempt`` change of the history, as the store
    keeps it: see :class:`ObligationHistory`)."""

    at: datetime  # when the call was placed
    by: str | None  # the staff extension that placed it
    linkedid: str


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of an obligation's history: what happened, when, why, and the state after."""

    at: datetime = field(metadata=TIME)
    kind: ChangeKind
    state: ObligationState
    cause: str
    linkedid: str | None = None
    by: str | None = None


CHANGE: Shape[Change] = Shape(Change)
CHANGE_KINDS: tuple[ChangeKind, ...] = get_args(ChangeKind)
_KIND_INDEX: dict[str, int] = {kind: i for i, kind in enumerate(CHANGE_KINDS)}
NO_CHANGES: tuple[int, ...] = (0,) * len(CHANGE_KINDS)


def count_kinds(kinds: Iterable[str]) -> tuple[int, ...]:
    """``Obligation.kind_counts`` of a history with these change kinds (unknown ones ignored)."""
    counts = list(NO_CHANGES)
    for kind in kinds:
        index = _KIND_INDEX.get(kind)
        if index is not None:
            counts[index] += 1
    return tuple(counts)


def bump(counts: tuple[int, ...], kind: ChangeKind) -> tuple[int, ...]:
    index = _KIND_INDEX[kind]
    return (*counts[:index], counts[index] + 1, *counts[index + 1 :])


@dataclass(frozen=True, slots=True)
class Obligation:
    """A callback owed to one number by one staff member or department.

    A compact snapshot: its size does not grow with the number of calls joined, attempts
    made or changes applied. The history itself (every :class:`Change`, and from it the
    joined calls' linkedids and the attempts) is the store's (``obligation_changes``, read
    back as an :class:`ObligationHistory`); the snapshot keeps only counts of it.
    """

    id: str  # stable: "call-<linkedid of the first missed call>" or the memo's id
    number: str  # normalised (``normalise_number``)
    number_raw: str  # as first seen
    owner: str  # a staff extension or a department name
    owner_kind: OwnerKind
    owner_department: str | None
    source: Source
    created_at: datetime = field(metadata=TIME)
    due_at: datetime = field(metadata=TIME)
    reminder_at: datetime = field(metadata=TIME)
    state: ObligationState = "open"
    missed_calls: int = 0  # missed calls joined here, the first one included
    caller_name: str = ""
    matter: str = ""  # memo: the customer's matter (민원내용)
    taken_by: str | None = None  # memo: who took it
    closed_at: datetime | None = field(default=None, metadata=TIME)
    closed_by: str | None = None  # extension that called back / answered, or who cancelled
    closing_call: str | None = None  # linkedid of the call that closed it
    # How many changes the history holds: the latest is history row ``history_length - 1``.
    history_length: int = 0
    kind_counts: tuple[int, ...] = NO_CHANGES  # changes of each kind, in CHANGE_KINDS order

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def key(self) -> tuple[str, str]:
        return (self.number, self.owner)

    @property
    def attempt_count(self) -> int:
        """Unanswered callback attempts so far."""
        return self.count("attempt")

    # The tracker stamps the reminder and the overdue transition with the times they were
    # due at: these say when they happened (``None``: not yet), also once closed.
    @property
    def reminded_at(self) -> datetime | None:
        return self.reminder_at if self.count("reminder") else None

    @property
    def overdue_at(self) -> datetime | None:
        return self.due_at if self.count("overdue") else None

    def count(self, *kinds: ChangeKind) -> int:
        """How many changes of these kinds the history holds."""
        return sum(self.kind_counts[_KIND_INDEX[kind]] for kind in kinds)


OBLIGATION: Shape[Obligation] = Shape(
    Obligation, {"attempt_count": VALUE, "reminded_at": TIME, "overdue_at": TIME}
)


@dataclass(frozen=True, slots=True)
class ObligationHistory:
    """An obligation's changes in order, as the store keeps them (not held in memory)."""

    changes: tuple[Change, ...] = ()

    @property
    def calls(self) -> tuple[str, ...]:
        """The linkedids of the missed calls joined, the first one included."""
        return tuple(
            c.linkedid
            for c in self.changes
            if c.kind in ("created", "joined") and c.linkedid is not None
        )

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        """The unanswered callback attempts."""
        return tuple(
            Attempt(c.at, c.by, c.linkedid)
            for c in self.changes
            if c.kind == "attempt" and c.linkedid is not None
        )


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

    @property
    def position(self) -> int:
        """The change's index in the obligation's history (the store's row ``position``)."""
        return self.obligation.history_length - 1


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a memo or a cancel did, and whether the store has committed it yet;
    ``repeated``: a memo sent again with the same id, which changed nothing this time."""

    change: ObligationChange
    stored: bool
    repeated: bool = False

    @property
    def obligation(self) -> Obligation:
        return self.change.obligation


class OpenCounts(NamedTuple):
    """Open obligations of one department at a given time (``counts_by_department``)."""

    open: int
    overdue: int  # past due at that time, whether or not ``due_events`` has marked them yet


def at_epoch(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, SEOUL)


def iso_at(at: datetime | None) -> str | None:
    """A time as users read it (``timefmt.iso_seoul``), from a datetime."""
    return None if at is None else iso_seoul(at.timestamp())


# The ``replay --json`` line's keys after ``kind``, in order; attempts: unanswered ones only.
CALLBACK_REPORT: tuple[Key, ...] = (
    "owner",
    "owner_department",
    "number",
    "created_at",
    "due_at",
    "state",
    ("attempts", "attempt_count"),
    "closed_at",
    "closed_by",
)


def callback_report(obligation: Obligation) -> dict[str, Any]:
    """The obligation as one report line; times ISO 8601 with the +09:00 offset."""
    return {"kind": "callback", **report(OBLIGATION.values(obligation, iso_at), CALLBACK_REPORT)}
