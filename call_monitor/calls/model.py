"""What the correlator concludes about a call: plain data, no behaviour beyond derived values.

Times are epoch seconds taken from the events' own ``Timestamp`` header, never a clock.
Each record type's plain mapping (``LEG``, ``TRANSFER``, ``CALL``: :mod:`call_monitor.records`)
is declared next to it; the store's rows and the JSON lines are derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from call_monitor.records import TIME, VALUE, Shape

Direction = Literal["inbound", "outbound", "internal", "unknown"]
# pbx: the PBX hung up every channel itself (a restart or shutdown): P7 not judged.
HangupSide = Literal["caller", "staff", "unknown", "pbx"]
# pbx_restart: still ringing when the PBX restarted (the caller is owed a callback);
# abandoned_in_queue: the caller left a queue before any phone rang for them.
MissedReason = Literal[
    "no_answer",
    "caller_abandoned",
    "busy",
    "unavailable",
    "failed",
    "pbx_restart",
    "abandoned_in_queue",
]
# Where the dialplan took a caller nobody answered, after the Dial gave up: VoiceMail, an
# announcement (Playback, Background), or another application that answered the caller.
AfterDial = Literal["voicemail", "announcement", "other"]
# park: the customer parked (a blind transfer to the parking extension, or Park) and
# retrieved by a colleague from the parking space.
TransferKind = Literal["blind", "attended", "park"]
# outside: a party on the public side who is not the customer (a transfer out of the office).
Party = Literal["customer", "staff", "outside"]
Outcome = Literal["answered", "missed", "incomplete"]


@dataclass(slots=True)
class Leg:
    """One phone's part in a call: the customer's line, a staff phone, or an outside party the
    call was transferred to (not Local channels)."""

    party: Party
    extension: str | None  # staff extension; None for the public side
    rang_at: float | None = field(default=None, metadata=TIME)
    answered_at: float | None = field(default=None, metadata=TIME)
    ended_at: float | None = field(default=None, metadata=TIME)
    hangup_cause: str | None = None
    after_answer: bool = False  # rang after the call was answered: a transfer target
    conference: bool = False  # joined a conference (ConfBridge) with the customer


LEG: Shape[Leg] = Shape(Leg)


@dataclass(slots=True)
class Transfer:
    """One transfer of the customer by a staff member to a colleague (or a park: the
    colleague is who retrieved the customer from the parking space)."""

    kind: TransferKind
    # Hold, BlindTransfer or the transfer feature, whichever came first (a park: the same)
    started_at: float = field(metadata=TIME)
    from_ext: str | None
    to_ext: str | None = None  # the colleague's extension; the number, if external
    completed: bool = False
    target_rang_at: float | None = field(default=None, metadata=TIME)
    target_answered_at: float | None = field(default=None, metadata=TIME)
    # The customer is talking with the colleague (a park: retrieved, UnParkedCall).
    connected_at: float | None = field(default=None, metadata=TIME)
    # The target is outside the office (a staff member's mobile, another agency): the call
    # left the office. Its wait counts for P4 all the same.
    external: bool = False

    @property
    def wait_seconds(self) -> float | None:
        if self.connected_at is None:
            return None
        return round(self.connected_at - self.started_at, 6)

    @property
    def target_ring_seconds(self) -> float | None:
        if self.target_rang_at is None or self.target_answered_at is None:
            return None
        return round(self.target_answered_at - self.target_rang_at, 6)


# Its wait and ring seconds are not in it: the verdict's (TransferVerdict) carry them.
TRANSFER: Shape[Transfer] = Shape(Transfer)


@dataclass(slots=True)
class CallRecord:
    """One call, from the first channel of a ``Linkedid`` to the last hang-up."""

    linkedid: str
    started_at: float = field(metadata=TIME)
    direction: Direction = "unknown"
    caller: str = ""  # the customer's number (inbound) or the staff extension (outbound)
    caller_name: str = ""
    dialed: str = ""  # what was dialled: an extension, group, queue or external number
    staff: str | None = None  # outbound/internal: the staff extension that placed the call
    # The caller joined a queue (QueueCallerJoin): waiting there, no phone ringing yet.
    queue_joined_at: float | None = field(default=None, metadata=TIME)
    # The first staff phone (or the customer) rang.
    ring_started_at: float | None = field(default=None, metadata=TIME)
    # The customer's call became a conference (ConfBridge): its legs say who joined.
    conference_at: float | None = field(default=None, metadata=TIME)
    # Unanswered, the caller stayed on (voicemail, an announcement): the last staff phone
    # stopped ringing then, and the ring time ends there, not at the caller's hang-up.
    ring_ended_at: float | None = field(default=None, metadata=TIME)
    answered_at: float | None = field(default=None, metadata=TIME)
    answered_by: str | None = None  # extension; the customer's number for outbound calls
    picked_up: bool = False  # answered by a colleague through call pickup
    legs: list[Leg] = field(default_factory=list)
    ended_at: float | None = field(default=None, metadata=TIME)
    missed: bool = False
    missed_reason: MissedReason | None = None
    after_dial: AfterDial | None = None  # unanswered: where the dialplan took the caller next
    voicemail_left: bool = False  # the caller left a voicemail message (MessageWaiting)
    hangup_first: HangupSide = "unknown"
    # A staff phone was bridged with the customer: a conversation took place (P7 is judged
    # only then: it is about how a conversation ends).
    talked: bool = False
    incomplete: bool = False  # the monitor did not see the whole call
    transfers: list[Transfer] = field(default_factory=list)

    @property
    def ring_seconds(self) -> float | None:
        """Seconds from the first ring to the answer; if never answered, to the moment the
        last staff phone stopped ringing when the caller stayed on (:attr:`ring_ended_at`),
        else to the end."""
        if self.ring_started_at is None:
            return None
        stop = self.answered_at
        if stop is None:
            stop = self.ring_ended_at if self.ring_ended_at is not None else self.ended_at
        if stop is None:
            return None
        return round(max(0.0, stop - self.ring_started_at), 6)

    @property
    def queue_wait_seconds(self) -> float | None:
        """A queue's caller: seconds waited in the queue before the first phone rang (to
        the end, if none rang): the wait that wallboards call waiting time, not ringing."""
        if self.queue_joined_at is None:
            return None
        stop = self.ring_started_at if self.ring_started_at is not None else self.ended_at
        if stop is None:
            return None
        return round(max(0.0, stop - self.queue_joined_at), 6)

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    @property
    def outcome(self) -> Outcome:
        """Missed: never answered; incomplete: the monitor did not see the whole call."""
        if self.incomplete:
            return "incomplete"
        return "answered" if self.answered else "missed"

    @property
    def rang(self) -> list[str]:
        """The staff extensions rung for the caller before the answer, first to ring first."""
        ringing = sorted(
            (leg.rang_at, leg.extension)
            for leg in self.legs
            if leg.party == "staff"
            and leg.extension is not None
            and leg.rang_at is not None
            and not leg.after_answer
        )
        return list(dict.fromkeys(extension for _, extension in ringing))

    @property
    def conference(self) -> list[str]:
        """The staff extensions that joined the customer's conference, in order of joining."""
        return list(
            dict.fromkeys(
                leg.extension
                for leg in self.legs
                if leg.conference and leg.party == "staff" and leg.extension is not None
            )
        )


CALL: Shape[CallRecord] = Shape(
    CallRecord,
    {"ring_seconds": VALUE, "queue_wait_seconds": VALUE, "rang": VALUE, "conference": VALUE},
)


@dataclass(frozen=True, slots=True)
class CallStarted:
    """A new call appeared (first channel of a new ``Linkedid``)."""

    linkedid: str
    at: float


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The call was answered: live boards may show it before the call ends.

    A snapshot of the call as it stood at the answer, in immutable values: the correlator
    goes on changing its record (legs, transfers, the end) but never this fact.
    """

    linkedid: str
    at: float  # the answer
    started_at: float
    direction: Direction
    caller: str
    caller_name: str
    dialed: str
    staff: str | None
    answered_by: str | None
    picked_up: bool
    ring_started_at: float | None
    rang: tuple[str, ...]  # the staff extensions rung before the answer, first to ring first
    incomplete: bool  # so far: the monitor did not see the call's start

    @classmethod
    def of(cls, record: CallRecord, at: float) -> CallAnswered:
        return cls(
            linkedid=record.linkedid,
            at=at,
            started_at=record.started_at,
            direction=record.direction,
            caller=record.caller,
            caller_name=record.caller_name,
            dialed=record.dialed,
            staff=record.staff,
            answered_by=record.answered_by,
            picked_up=record.picked_up,
            ring_started_at=record.ring_started_at,
            rang=tuple(record.rang),
            incomplete=record.incomplete,
        )


@dataclass(frozen=True, slots=True)
class CallEnded:
    """Every channel of the call has hung up (or the call was closed after a gap).

    The record is final: the correlator keeps no reference to it (nor to its legs and
    transfers) once it emitted this fact, and a late event of the call finds a tombstone
    or, after the tombstone is gone, starts a new record. So it is not copied.
    """

    record: CallRecord


Fact = CallStarted | CallAnswered | CallEnded
