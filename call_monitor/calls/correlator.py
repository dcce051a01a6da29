"""The call correlator: AMI events in, call facts out. Pure: no I/O, no clock.

Channels are followed by ``Uniqueid`` and grouped into calls by ``Linkedid`` (kept by
Asterisk across transfers, Local channels and pickups). One handler per event type, in
the ``_HANDLERS`` table at the bottom. Times come only from the events' ``Timestamp``
header, so a recording replays into the same records every time.

Roles of a call's channels:
- the *originator* is the first channel (``Uniqueid == Linkedid``): the customer's trunk
  channel for an inbound call, a staff phone for an outbound or internal call;
- the *customer* is the party the charter protects: the originator of inbound and internal
  calls, the dialled trunk channel of an outbound call;
- every other non-Local channel is a *phone* that can ring and answer.

A handler that raises rejects that one event (a fact says so); the other calls go on.
Missing or malformed headers (``KeyError``, ``ValueError``) are the event's fault: the call
goes on without it. Any other exception is a bug the event triggered, which may have left
its call half-updated: that call is closed at once as incomplete and its ids buried, so its
later events are rejected instead of raising again (:meth:`Correlator._quarantine`). Only
the correlator knows which call an event touched, so the call is isolated here; the shell
logs and counts the bug from the rejection (``EventRejected.error``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise

from call_monitor.ami.framing import AmiMessage, EventFilter
from call_monitor.ami.stream import PbxRestarted, Resync, StreamItem
from call_monitor.calls.model import (
    AfterDial,
    CallAnswered,
    CallEnded,
    CallRecord,
    CallStarted,
    Fact,
    Leg,
    MissedReason,
    Party,
    Transfer,
)

STATE_RINGING = "5"
STATE_UP = "6"
# SoftHangupRequest's Cause is Asterisk's soft hang-up flag: AST_SOFTHANGUP_SHUTDOWN.
SOFTHANGUP_SHUTDOWN = "4"
# A call with no event for this long (event time) is closed as incomplete: its end was lost.
MAX_IDLE_SECONDS = 4 * 3600.0
_SWEEP_EVERY_SECONDS = 60.0
DEFAULT_MAX_CALLS = 10_000  # calls in progress (``ami.max_calls_in_progress``)
# Ended calls and hung-up channels remembered so late events cannot resurrect them.
_TOMBSTONES = 50_000
# Event times outside this range (2000 to 2100 UTC) cannot be dates of a call: rejected with
# the event, as a missing Timestamp is (``nan``, ``inf`` or ``1e300`` parse as floats, and
# the call's times then failed every consumer that turns them into a date).
_EARLIEST_TS = 946_684_800.0
_LATEST_TS = 4_102_444_800.0
# Event times move forward by any amount (a quiet night), but a jump this far moves the
# stream's clock (the stale-call sweep's) only once a second event confirms it: one event
# stamped far ahead is an outlier, rejected when the next one comes back in range. Going
# back this far is rejected at once, unless _REANCHOR_AFTER events in a row agree on it
# (the PBX's clock was set back).
MAX_TIME_JUMP_SECONDS = 3600.0
_REANCHOR_AFTER = 3
# Facts of a call out of order by more than this (a hang-up before the start) are broken.
_ORDER_SLACK_SECONDS = 1.0
# Key presses closer than this belong to one run (a feature code and the number after it).
DTMF_RUN_GAP_SECONDS = 3.0
# A run of key presses that ended this recently before a transfer started it.
DTMF_RUN_RECENT_SECONDS = 10.0

_DIAL_FAILURES: dict[str, MissedReason] = {
    "BUSY": "busy",
    "CHANUNAVAIL": "unavailable",
    "CONGESTION": "unavailable",
    "NOANSWER": "no_answer",
}

# What a dialplan application that takes an unanswered caller is, by its name in lower case
# (the ``Application`` of a CEL record on the caller's channel): ``VoiceMail(201@default,u)``
# after a ``Dial`` that timed out, ``Playback(closed-message)`` ... Another application that
# answers the caller (``Newstate`` Up, CEL ``ANSWER``) is ``other``.
_AFTER_DIAL_APPS: dict[str, AfterDial] = {
    "voicemail": "voicemail",
    "playback": "announcement",
    "background": "announcement",
}
# Applications that are steps of ringing staff or of the dialplan's flow, not a place the
# caller was taken to (CEL ``ANSWER`` names ``Dial`` on a caller a staff phone answered).
_NOT_AFTER_DIAL_APPS = frozenset(
    {"", "dial", "appdial", "queue", "appqueue", "answer", "noop", "set", "goto", "gotoif"}
    | {"gotoiftime", "execif", "gosub", "return", "hangup", "verbose", "log", "macro"}
)
# CEL records the correlator reads: the key presses, and those naming an application that
# takes an unanswered caller (CEL gives the name the application registered: pbx_exec sets
# the channel's appl to it). Only these are parsed: the many others (a Dial's, a Queue's)
# are dropped unparsed, as another application answering the caller shows in Newstate.
_CEL_USED = (
    b"\r\nEventName: DTMF\r\n",
    b"\r\nApplication: VoiceMail\r\n",
    b"\r\nApplication: Playback\r\n",
    b"\r\nApplication: BackGround\r\n",
)


@dataclass(frozen=True, slots=True)
class Topology:
    """Which side of the PBX is the public (trunks): from the directory configuration."""

    public_endpoints: frozenset[str] = frozenset()
    public_contexts: frozenset[str] = frozenset()

    def is_public(self, endpoint: str, context: str) -> bool:
        return endpoint in self.public_endpoints or context in self.public_contexts


@dataclass(frozen=True, slots=True)
class EventRejected:
    """An event the correlator could not use: counted and logged by the shell."""

    event: str
    reason: str
    # Set when a handler raised something other than KeyError or ValueError (a bug): the
    # exception, for the shell to log with its traceback, and the call closed because of it.
    error: Exception | None = None
    linkedid: str | None = None


Output = Fact | EventRejected


def endpoint_of(channel_name: str) -> str:
    """``PJSIP/201-0000002b`` -> ``201``; ``Local/202@staff-00000004;1`` -> ``202@staff``."""
    _, _, rest = channel_name.partition("/")
    rest = rest.split(";", 1)[0]
    dash = rest.rfind("-")
    return rest[:dash] if dash > 0 else rest


@dataclass(slots=True)
class Channel:
    uniqueid: str
    name: str
    endpoint: str
    context: str
    caller_num: str
    public: bool
    local: bool
    call: CallState
    leg: Leg | None  # None for Local channels, which are not phones
    rang_at: float | None = None
    answered_at: float | None = None
    bridge: str | None = None
    held_since: float | None = None
    hangup_requested: bool = False
    dtmf_run_started: float | None = None  # first digit of the latest run of key presses
    last_dtmf_at: float | None = None

    def transfer_started(self, ts: float) -> float:
        """When this staff member started a transfer seen at ``ts``: the first key of the
        feature code (``*2``, ``##``) if one was just typed, else the Hold, else ``ts``."""
        started = ts
        if self.held_since is not None:
            started = min(started, self.held_since)
        if (
            self.dtmf_run_started is not None
            and self.last_dtmf_at is not None
            and ts - self.last_dtmf_at <= DTMF_RUN_RECENT_SECONDS
        ):
            started = min(started, self.dtmf_run_started)
        return started

    @property
    def extension(self) -> str | None:
        """The staff extension of a phone channel."""
        if self.public or self.local:
            return None
        return self.endpoint


@dataclass(slots=True)
class CallState:
    record: CallRecord
    originator: str  # uniqueid
    channels: dict[str, Channel] = field(default_factory=dict)
    customer: str | None = None  # uniqueid of the customer's channel
    dial_attempted: bool = False
    dial_failure: MissedReason | None = None
    caller_gave_up: bool = False
    in_queue: bool = False  # between QueueCallerJoin and leaving the queue
    last_event_at: float = 0.0
    # The last hang-up of a staff phone that rang for the caller and did not answer.
    ring_stopped_at: float | None = None
    open_transfer: Transfer | None = None  # a transfer waiting for its target to answer
    consultation: set[str] = field(default_factory=set)  # channels of an attended transfer
    ended_by_pbx: bool = False  # hung up by the PBX itself (restart, shutdown)


@dataclass(slots=True)
class CorrelatorStats:
    events: int = 0
    rejected: int = 0
    calls_started: int = 0
    calls_ended: int = 0
    incomplete_closed: int = 0
    handler_errors: int = 0  # events that raised a bug in a handler (their calls closed)
    bad_times: int = 0  # of the rejected: a Timestamp that is no date or far from the others
    broken_calls: int = 0  # calls closed incomplete because their facts contradict each other
    capped: int = 0  # calls closed incomplete to keep within the cap on calls in progress
    pbx_restarts: int = 0  # PBX shutdowns and restarts seen (Shutdown, or a short uptime)


class Correlator:
    """Feed it stream items with :meth:`step`; it returns the facts each one produced."""

    def __init__(self, topology: Topology, max_calls: int = DEFAULT_MAX_CALLS) -> None:
        self.topology = topology
        self.max_calls = max_calls
        self.stats = CorrelatorStats()
        self._calls: dict[str, CallState] = {}  # linkedid -> call
        self._channels: dict[str, Channel] = {}  # uniqueid -> channel
        self._by_name: dict[str, str] = {}  # channel name -> uniqueid
        self._bridges: dict[str, set[str]] = {}  # bridge id -> uniqueids
        self._conferences: dict[str, CallState] = {}  # ConfBridge name -> the customer's call
        self._last_sweep = 0.0
        self._gone: dict[str, None] = {}  # ended linkedids and hung-up uniqueids, oldest first
        self._last_ts = 0.0  # the newest event time seen: the correlator's only clock
        # A forward jump not yet confirmed (MAX_TIME_JUMP_SECONDS): its time and calls; the
        # recent times far behind the clock (_REANCHOR_AFTER).
        self._jump: tuple[float, list[CallState]] | None = None
        self._behind: list[float] = []
        self._went_down = False  # a Shutdown seen since the last PbxRestarted
        # Calls adopted at a resync before any event time was known (the first thing a new
        # connection sees): linkedid -> how long they had been up (the PBX's ``Duration``).
        # The first event time dates them; until then their start is unknown, never 1970.
        self._undated: dict[str, float] = {}

    # -- public -------------------------------------------------------------------------

    @property
    def calls_in_progress(self) -> int:
        return len(self._calls)

    def step(self, item: StreamItem) -> list[Output]:
        if isinstance(item, AmiMessage):
            return self._event(item)
        if isinstance(item, Resync):
            return self._resync(item.channels)
        if isinstance(item, PbxRestarted):
            out: list[Output] = []
            if not self._went_down:  # no Shutdown seen before the link went: count it here
                self.stats.pbx_restarts += 1
            self._went_down = False
            self._pbx_hung_up_all(self._last_ts, out)
            return out
        # LinkUp / LinkDown change no call by themselves: the Resync after a reconnect
        # tells which calls survived the gap.
        return []

    def close_all(self) -> list[Output]:
        """End of input (a replay's last byte): what is still open was not seen to end."""
        out: list[Output] = []
        for call in list(self._calls.values()):
            self._finish(call, out, incomplete=True)
        return out

    # -- events -------------------------------------------------------------------------

    def _event(self, msg: AmiMessage) -> list[Output]:
        name = msg.event or ""
        handler = _HANDLERS.get(name)
        if handler is None:
            return []
        self.stats.events += 1
        ts = _event_time(msg)
        out: list[Output] = []
        if ts is None or not self._time_accepted(ts, out):
            return self._bad_time(msg, name, ts, out)
        jumped = self._jump is not None
        if self._undated:
            self._date_adopted(ts)
        try:
            handler(self, msg, ts, out)
        except (KeyError, ValueError) as exc:
            self.stats.rejected += 1
            out.append(EventRejected(name, f"{type(exc).__name__}: {exc}"))
        except Exception as exc:  # a bug this event triggered: see the module's docstring
            self.stats.handler_errors += 1
            closed = self._quarantine(msg, out)
            linkedid = closed[0] if closed else msg.headers.get("Linkedid")
            out.append(
                EventRejected(name, f"{type(exc).__name__}: {exc}", error=exc, linkedid=linkedid)
            )
        if jumped and self._jump is not None and not self._jump[1]:
            self._jump[1].extend(self._calls_named_by(msg))  # kept from judgement if odd
        # Not on an unconfirmed jump: one event alone never moves the sweep's clock.
        if ts - self._last_sweep > _SWEEP_EVERY_SECONDS and not jumped:
            self._sweep(ts, out)
        return out

    def _time_accepted(self, ts: float, out: list[Output]) -> bool:
        """Whether ``ts`` is a plausible time for the stream's next event; the clock
        (``_last_ts``) moved as MAX_TIME_JUMP_SECONDS says."""
        last = self._last_ts
        if last and ts < last - MAX_TIME_JUMP_SECONDS:
            return self._far_behind(ts)
        self._behind.clear()
        jump = self._jump
        if jump is not None and abs(ts - jump[0]) <= MAX_TIME_JUMP_SECONDS:
            self._jump = None  # confirmed: the stream's time is there
        elif last and ts > last + MAX_TIME_JUMP_SECONDS:
            if jump is not None:
                self._outlier(*jump, out)
            self._jump = (ts, [])  # its calls: see _event
            return True  # taken, the clock left where it was until confirmed
        elif jump is not None:
            self._jump = None  # back in range: the jump was one odd event
            self._outlier(*jump, out)
        self._last_ts = max(last, ts)
        return True

    def _far_behind(self, ts: float) -> bool:
        behind = self._behind
        behind.append(ts)
        del behind[:-_REANCHOR_AFTER]
        if len(behind) < _REANCHOR_AFTER or max(behind) - min(behind) > MAX_TIME_JUMP_SECONDS:
            return False
        self._last_ts = self._last_sweep = ts  # set back: the sweep follows
        behind.clear()
        return True

    def _outlier(self, ts: float, calls: list[CallState], out: list[Output]) -> None:
        """An event taken at a forward jump that the next one did not confirm: counted, the
        calls it touched kept from judgement, and a call it started closed (its clock is
        the outlier's: the sweep would keep it that much longer)."""
        self.stats.rejected += 1
        self.stats.bad_times += 1
        for call in calls:
            call.record.incomplete = True
            if call.record.started_at == ts and self._calls.get(call.record.linkedid) is call:
                self._finish(call, out, incomplete=True)
        out.append(EventRejected("(outlier)", "Timestamp far ahead of the events around it"))

    def _bad_time(
        self, msg: AmiMessage, name: str, ts: float | None, out: list[Output]
    ) -> list[Output]:
        """Reject an event whose time is no date or far behind; the calls it names lost a
        fact, so they are closed incomplete when they end (never judged)."""
        self.stats.rejected += 1
        self.stats.bad_times += 1
        for call in self._calls_named_by(msg):
            call.record.incomplete = True
        if ts is None:
            out.append(EventRejected(name, "no valid Timestamp header"))
        else:
            out.append(EventRejected(name, "Timestamp far behind the stream's recent times"))
        return out

    def _channel(self, msg: AmiMessage, ts: float, out: list[Output]) -> Channel:
        """The channel an event is about, created if its Newchannel was never seen."""
        uniqueid = msg.headers["Uniqueid"]
        channel = self._channels.get(uniqueid)
        if channel is None:
            channel = self._new_channel(msg, ts, out, seen_start=False)
        channel.call.last_event_at = ts
        return channel

    def _new_channel(
        self, msg: AmiMessage, ts: float, out: list[Output], *, seen_start: bool, prefix: str = ""
    ) -> Channel:
        h = msg.headers
        uniqueid = h[prefix + "Uniqueid"]
        linkedid = h.get(prefix + "Linkedid") or uniqueid
        if uniqueid in self._gone or linkedid in self._gone:
            raise ValueError("event after its channel or call ended")
        name = h[prefix + "Channel"]
        call = self._calls.get(linkedid)
        if call is None:
            record = CallRecord(linkedid=linkedid, started_at=ts, incomplete=not seen_start)
            call = CallState(record=record, originator=linkedid, last_event_at=ts)
            if len(self._calls) >= self.max_calls:
                self._evict_oldest(out)
            self._calls[linkedid] = call
            self.stats.calls_started += 1
            out.append(CallStarted(linkedid, ts))
        elif not seen_start:
            call.record.incomplete = True
        endpoint = endpoint_of(name)
        context = h.get(prefix + "Context", "")
        public = self.topology.is_public(endpoint, context)
        local = name.startswith("Local/")
        leg = None
        if not local:
            leg = Leg(self._party(call, public), None if public else endpoint)
            call.record.legs.append(leg)
        channel = Channel(
            uniqueid=uniqueid,
            name=name,
            endpoint=endpoint,
            context=context,
            caller_num=h.get(prefix + "CallerIDNum", ""),
            public=public,
            local=local,
            call=call,
            leg=leg,
        )
        self._channels[uniqueid] = channel
        self._by_name[name] = uniqueid
        call.channels[uniqueid] = channel
        if uniqueid == call.originator:
            self._set_originator(
                call, channel, h.get(prefix + "Exten", ""), h.get(prefix + "CallerIDName", "")
            )
        return channel

    @staticmethod
    def _party(call: CallState, public: bool) -> Party:
        """A public channel is the customer's, unless the call already has its customer on
        the public side (an inbound call's caller, an outbound call's callee): then it is
        an outside party the call was transferred to."""
        if not public:
            return "staff"
        return "outside" if call.record.direction in ("inbound", "outbound") else "customer"

    def _set_originator(self, call: CallState, channel: Channel, exten: str, name: str) -> None:
        record = call.record
        record.caller = channel.caller_num
        record.caller_name = name
        record.dialed = exten
        if channel.public:
            record.direction = "inbound"
            call.customer = channel.uniqueid
        elif not channel.local:
            record.direction = "internal"  # until it dials the public side
            record.staff = channel.extension
            call.customer = channel.uniqueid

    def on_newchannel(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        uniqueid = msg.headers["Uniqueid"]
        if uniqueid not in self._channels:
            self._new_channel(msg, ts, out, seen_start=True)

    def on_newstate(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        channel = self._channel(msg, ts, out)
        state = msg.headers.get("ChannelState")
        if channel.uniqueid == channel.call.customer and state == STATE_UP:
            self._after_dial(channel.call, ts, "other")  # the PBX answered the caller
        if channel.local or channel.uniqueid == channel.call.originator:
            return
        if state == STATE_RINGING:
            self._ringing(channel, ts)
        elif state == STATE_UP:
            if channel.rang_at is None and channel.answered_at is None:
                self._ringing(channel, ts)  # answered without a Ringing state (auto-answer)
            self._answered(channel, ts, out)

    def _ringing(self, channel: Channel, ts: float) -> None:
        if channel.rang_at is not None:
            return
        channel.rang_at = ts
        call = channel.call
        record = call.record
        if channel.leg is not None:
            channel.leg.rang_at = ts
            channel.leg.after_answer = record.answered_at is not None
        if channel.public and record.direction == "internal":
            record.direction = "outbound"
            call.customer = channel.uniqueid
            record.staff = record.staff or call.channels[call.originator].extension
        if record.answered_at is None:
            call.dial_attempted = True
            if record.ring_started_at is None or ts < record.ring_started_at:
                record.ring_started_at = ts
        elif (
            call.open_transfer is not None
            and call.open_transfer.target_rang_at is None
            and call.open_transfer.kind != "park"  # nobody rings for a parked call
        ):
            call.open_transfer.target_rang_at = ts
            call.open_transfer.to_ext = call.open_transfer.to_ext or channel.extension
            call.open_transfer.external = call.open_transfer.external or channel.public

    def _answered(self, channel: Channel, ts: float, out: list[Output]) -> None:
        if channel.answered_at is not None:
            return
        channel.answered_at = ts
        if channel.leg is not None:
            channel.leg.answered_at = ts
        call = channel.call
        record = call.record
        if record.answered_at is None:
            record.answered_at = ts
            record.answered_by = channel.extension
            out.append(CallAnswered.of(record, ts))
            return
        transfer = call.open_transfer
        if transfer is not None and transfer.target_answered_at is None and transfer.kind != "park":
            transfer.target_answered_at = ts
            transfer.to_ext = channel.extension or transfer.to_ext
            transfer.external = transfer.external or channel.public
            if transfer.kind == "blind":
                transfer.connected_at = ts
                transfer.completed = True
                call.open_transfer = None

    def on_dialbegin(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        if "DestUniqueid" not in msg.headers:
            return
        dest = self._channels.get(msg.headers["DestUniqueid"])
        if dest is None:
            dest = self._new_channel(msg, ts, out, seen_start=True, prefix="Dest")
        call = dest.call
        call.last_event_at = ts
        if "Uniqueid" not in msg.headers:
            return  # dialled by an application (Originate): no caller channel
        caller = self._channel(msg, ts, out)
        if dest.public and call.record.direction == "internal":
            call.record.direction = "outbound"
            call.customer = dest.uniqueid
            call.record.dialed = call.record.dialed or msg.headers.get("DialString", "")
        if call.record.answered_at is None:
            call.dial_attempted = True
            return
        if caller.uniqueid != call.customer and (dest.extension is not None or dest.public):
            # After the answer, someone other than the customer dials a colleague (or an
            # outside number): the consultation leg of an attended transfer (Atxfer/*2 dial
            # through Local).
            number = msg.headers.get("DestCallerIDNum") or msg.headers.get("DestExten")
            self._start_attended(call, dest, ts, number)

    def _start_attended(
        self, call: CallState, dest: Channel, ts: float, number: str | None
    ) -> None:
        if call.open_transfer is not None:
            return
        transferer = self._current_staff_channel(call)
        transfer = Transfer(
            kind="attended",
            started_at=transferer.transfer_started(ts) if transferer else ts,
            from_ext=transferer.extension if transferer else None,
            to_ext=dest.extension or (number if dest.public else None),
            external=dest.public,
        )
        # Its Ringing may have come before the DialBegin (the order of events is not fixed).
        transfer.target_rang_at = dest.rang_at
        call.record.transfers.append(transfer)
        call.open_transfer = transfer
        call.consultation.add(dest.uniqueid)

    def _current_staff_channel(self, call: CallState) -> Channel | None:
        """The staff phone now talking with (or holding) the customer."""
        for uid in self._talking_with_customer(call):
            peer = self._channels.get(uid)
            if peer is not None and peer.extension is not None:
                return peer
        held = [c for c in call.channels.values() if c.held_since is not None and c.extension]
        if held:
            return held[-1]
        return None

    def on_dialend(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        status = msg.headers.get("DialStatus", "")
        dest = self._channels.get(msg.headers.get("DestUniqueid", ""))
        if dest is None:
            return
        call = dest.call
        call.last_event_at = ts
        failure = _DIAL_FAILURES.get(status)
        if failure is None:
            return
        if call.record.answered_at is None:
            # BUSY or unavailable outweigh a plain no-answer from another member.
            if call.dial_failure is None or failure != "no_answer":
                call.dial_failure = failure
        elif call.open_transfer is not None and dest.uniqueid in self._transfer_targets(call):
            call.open_transfer = None  # the colleague did not answer: transfer failed

    def _transfer_targets(self, call: CallState) -> set[str]:
        return {c.uniqueid for c in call.channels.values() if c.rang_at is not None}

    def on_hangup_request(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        channel = self._channel(msg, ts, out)
        channel.hangup_requested = True
        call = channel.call
        record = call.record
        if record.hangup_first != "unknown":
            return
        if channel.uniqueid == call.customer:
            if record.answered_at is None and record.after_dial is None:
                call.caller_gave_up = True
            record.hangup_first = "caller"
        elif (
            record.answered_at is not None
            and not channel.public  # an outside party the call went to is no staff member
            and self._bridged_with_customer(channel)
            and not self._other_staff_with_customer(channel)  # a conference goes on
        ):
            record.hangup_first = "staff"

    def _bridged_with_customer(self, channel: Channel) -> bool:
        return channel.uniqueid in self._talking_with_customer(channel.call)

    def _other_staff_with_customer(self, channel: Channel) -> bool:
        """Another staff phone than ``channel`` is with the customer (a conference)."""
        for uid in self._talking_with_customer(channel.call):
            peer = self._channels.get(uid)
            if (
                peer is None
                or peer.extension is None
                or uid in (channel.uniqueid, peer.call.customer)
            ):
                continue
            return True
        return False

    def _talking_with_customer(self, call: CallState) -> list[str]:
        """Channels in the customer's bridge, following Local channel pairs (``;1`` in one
        bridge, ``;2`` in another: a queue with Local members, an attended transfer)."""
        customer = call.channels.get(call.customer or "")
        if customer is None or customer.bridge is None:
            return []
        found: list[str] = []
        bridges = [customer.bridge]
        seen: set[str] = set()
        while bridges:
            bridge = bridges.pop()
            if bridge in seen:
                continue
            seen.add(bridge)
            for uid in sorted(self._bridges.get(bridge, ())):
                found.append(uid)
                partner = self._local_partner(self._channels.get(uid))
                if partner is not None and partner.bridge is not None:
                    found.append(partner.uniqueid)
                    bridges.append(partner.bridge)
        return found

    def _local_partner(self, channel: Channel | None) -> Channel | None:
        """``Local/x@ctx-0001;1`` <-> ``Local/x@ctx-0001;2``."""
        if channel is None or not channel.local or channel.name[-2:] not in (";1", ";2"):
            return None
        other = channel.name[:-1] + ("2" if channel.name.endswith("1") else "1")
        return self._by_channel_name(other)

    def on_hangup(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        channel = self._channels.get(msg.headers["Uniqueid"])
        if channel is None:
            return  # a channel we never saw: nothing to close
        call = channel.call
        call.last_event_at = ts
        if channel.leg is not None:
            channel.leg.ended_at = ts
            channel.leg.hangup_cause = msg.headers.get("Cause")
        if self._rings_unanswered(channel):
            call.ring_stopped_at = ts
        self._drop_channel(channel)
        if call.open_transfer is not None and channel.uniqueid in call.consultation:
            call.open_transfer = None  # consultation ended without a transfer
        if not call.channels:
            call.record.ended_at = ts
            self._finish(call, out, incomplete=call.record.incomplete)

    def on_soft_hangup_request(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        if msg.headers.get("Cause") != SOFTHANGUP_SHUTDOWN:
            return
        channel = self._channels.get(msg.headers["Uniqueid"])
        if channel is not None:
            channel.call.ended_by_pbx = True  # the PBX is going down: it hangs up itself

    def on_shutdown(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        """The PBX is going down (``Restart: True`` for ``core restart``), having hung up
        every channel: the calls still in flight end here, by the PBX. Channel names and
        Uniqueid counters start again after it: nothing of these calls stays keyed."""
        self.stats.pbx_restarts += 1
        self._went_down = True
        self._pbx_hung_up_all(ts, out)

    def _pbx_hung_up_all(self, ts: float, out: list[Output]) -> None:
        for call in list(self._calls.values()):
            call.ended_by_pbx = True
            if call.record.ended_at is None:
                call.record.ended_at = ts
            self._finish(call, out, incomplete=call.record.incomplete)

    def _bury(self, key: str) -> None:
        self._gone[key] = None
        if len(self._gone) > _TOMBSTONES:
            del self._gone[next(iter(self._gone))]

    def _drop_channel(self, channel: Channel) -> None:
        self._bury(channel.uniqueid)
        self._channels.pop(channel.uniqueid, None)
        if self._by_name.get(channel.name) == channel.uniqueid:
            del self._by_name[channel.name]
        channel.call.channels.pop(channel.uniqueid, None)
        if channel.bridge is not None:
            self._leave_bridge(channel)

    def on_bridge_enter(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        channel = self._channel(msg, ts, out)
        bridge = msg.headers["BridgeUniqueid"]
        if channel.bridge is not None:
            self._leave_bridge(channel)
        channel.bridge = bridge
        self._bridges.setdefault(bridge, set()).add(channel.uniqueid)
        self._note_talk(channel.call)

    def _note_talk(self, call: CallState) -> None:
        """A staff phone in the customer's bridge (through Local pairs): they talked."""
        if call.record.talked:
            return
        for uid in self._talking_with_customer(call):
            peer = self._channels.get(uid)
            if peer is not None and peer.extension is not None and uid != call.customer:
                call.record.talked = True
                return

    def on_bridge_leave(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        channel = self._channel(msg, ts, out)
        if channel.bridge == msg.headers.get("BridgeUniqueid"):
            self._leave_bridge(channel)

    def _leave_bridge(self, channel: Channel) -> None:
        members = self._bridges.get(channel.bridge or "")
        if members is not None:
            members.discard(channel.uniqueid)
            if not members:
                del self._bridges[channel.bridge or ""]
        channel.bridge = None

    def on_hold(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        channel = self._channel(msg, ts, out)
        if channel.held_since is None:
            channel.held_since = ts

    def on_unhold(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        self._channel(msg, ts, out).held_since = None

    def on_dtmf(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        if msg.headers.get("Direction", "Received") != "Received":
            return
        self._key_pressed(self._channel(msg, ts, out), ts)

    def on_cel(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        channel = self._channels.get(msg.headers["UniqueID"])
        if channel is None:
            return
        name = msg.headers.get("EventName")
        if name == "DTMF":
            # CEL reaches a read=call user that gets no DTMF events: its DTMF record is the
            # only sign of a transfer feature code on such a link.
            self._key_pressed(channel, ts)
        elif channel.uniqueid == channel.call.customer:
            self._customer_app(channel.call, msg.headers.get("Application", ""), ts, name)

    def on_message_waiting(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        """VoiceMail left a message: the event names the caller's channel (app_voicemail
        publishes the mailbox state with the channel that left the message)."""
        channel = self._channels.get(msg.headers.get("Uniqueid", ""))
        if channel is None or channel.uniqueid != channel.call.customer:
            return
        record = channel.call.record
        self._after_dial(channel.call, ts, "voicemail")
        if record.after_dial == "voicemail":
            record.voicemail_left = True

    def on_queue_caller_join(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        """The caller waits in a queue (every member busy: music, no phone ringing)."""
        call = self._channel(msg, ts, out).call
        call.in_queue = True
        if call.record.queue_joined_at is None:
            call.record.queue_joined_at = ts

    def on_queue_caller_leave(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        """Out of the queue: to a member who answered, or on at the queue's timeout."""
        self._channel(msg, ts, out).call.in_queue = False

    def on_queue_caller_abandon(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        """The caller hung up while waiting in the queue (app_queue: after the hang-up)."""
        call = self._channel(msg, ts, out).call
        call.in_queue = False
        if call.record.answered_at is None:
            call.caller_gave_up = True

    def _customer_app(self, call: CallState, app: str, ts: float, cel: str | None) -> None:
        """An application on the caller's channel: after an unanswered dial, where the
        dialplan took the caller (VoiceMail, an announcement; another one that answers)."""
        app = app.lower()
        if app in _NOT_AFTER_DIAL_APPS:
            return
        kind = _AFTER_DIAL_APPS.get(app)
        if kind is not None:
            self._after_dial(call, ts, kind)
        elif cel == "ANSWER":
            self._after_dial(call, ts, "other")

    def _after_dial(self, call: CallState, ts: float, kind: AfterDial) -> None:
        """The dialplan took an unanswered caller on after the staff phones stopped ringing:
        the ring time ends with the last of them; the caller staying on is no giving up."""
        record = call.record
        if record.direction not in ("inbound", "internal"):
            return  # an outbound call's customer is the callee: its answer is the answer
        dialled = call.dial_attempted or record.queue_joined_at is not None
        if record.answered_at is not None or not dialled or call.in_queue:
            return  # a queue may answer its caller between rounds of ringing: still waiting
        if any(
            c.extension is not None and c.uniqueid != call.customer for c in call.channels.values()
        ):
            return  # a dialled phone is still up (ringing, or about to): still the dial
        if record.after_dial in (None, "other"):
            record.after_dial = kind
        # The evidence may come after the caller hung up (CEL's HANGUP record names the
        # application the caller was in): they hung up there, not while it rang.
        call.caller_gave_up = False
        if record.ring_ended_at is None:
            record.ring_ended_at = call.ring_stopped_at if call.ring_stopped_at else ts

    @staticmethod
    def _rings_unanswered(channel: Channel) -> bool:
        """A staff phone ringing for a caller nobody answered yet."""
        return (
            channel.extension is not None
            and channel.rang_at is not None
            and channel.answered_at is None
            and channel.call.record.answered_at is None
            and channel.uniqueid != channel.call.customer
        )

    @staticmethod
    def _key_pressed(channel: Channel, ts: float) -> None:
        if channel.last_dtmf_at is None or ts - channel.last_dtmf_at > DTMF_RUN_GAP_SECONDS:
            channel.dtmf_run_started = ts
        channel.last_dtmf_at = ts

    def on_blind_transfer(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        h = msg.headers
        if h.get("Result") != "Success":
            return
        transferer = self._by_channel_name(h.get("TransfererChannel", ""))
        transferee = self._by_channel_name(h.get("TransfereeChannel", ""))
        anchor = transferee or transferer
        if anchor is None:
            raise ValueError("BlindTransfer for channels never seen")
        call = anchor.call
        call.last_event_at = ts
        transfer = Transfer(
            kind="blind",
            started_at=transferer.transfer_started(ts) if transferer else ts,
            from_ext=transferer.extension if transferer else None,
            to_ext=h.get("Extension") or None,
        )
        call.record.transfers.append(transfer)
        call.open_transfer = transfer

    def on_attended_transfer(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        h = msg.headers
        if h.get("Result") != "Success":
            return
        transferee = self._by_channel_name(h.get("TransfereeChannel", ""))
        first = self._by_channel_name(h.get("OrigTransfererChannel", ""))
        second = self._by_channel_name(h.get("SecondTransfererChannel", ""))
        anchor = transferee or first
        if anchor is None:
            raise ValueError("AttendedTransfer for channels never seen")
        call = anchor.call
        call.last_event_at = ts
        if second is not None and second.call is not call:
            # The phone made its own consultation call (SIP REFER/Replaces): merge it.
            self._absorb(call, second.call)
        transfer = call.open_transfer
        target = self._by_channel_name(h.get("TransferTargetChannel", ""))
        if transfer is None or transfer.kind != "attended":
            transferer = first or second
            transfer = Transfer(
                kind="attended",
                started_at=transferer.transfer_started(ts) if transferer else ts,
                from_ext=transferer.extension if transferer else None,
                to_ext=target.extension if target else None,
            )
            call.record.transfers.append(transfer)
        if target is not None and target.public:
            transfer.external = True
            transfer.to_ext = transfer.to_ext or target.caller_num or None
        if target is not None:
            # The phone's own consultation call (REFER) rang and answered the colleague in a
            # call of its own: the target channel kept when (issue 15: a long-ringing one).
            transfer.target_rang_at = transfer.target_rang_at or target.rang_at
            transfer.target_answered_at = transfer.target_answered_at or target.answered_at
        transfer.completed = True
        transfer.connected_at = ts
        call.open_transfer = None
        call.consultation.clear()

    def on_parked_call(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        """The customer was parked: the blind transfer to the parking extension just seen
        becomes a park (or a park of its own, by the Park application); it waits for a
        colleague to retrieve the customer. ``Parkee*`` headers, no ``Channel``."""
        parkee = self._parkee(msg)
        call = parkee.call
        call.last_event_at = ts
        transfer = call.open_transfer
        if transfer is None or transfer.kind != "blind" or transfer.completed:
            parker = endpoint_of(msg.headers.get("ParkerDialString", ""))
            transfer = Transfer(
                kind="park",
                started_at=ts,
                from_ext=parker or None,
                to_ext=msg.headers.get("ParkingSpace") or None,
            )
            call.record.transfers.append(transfer)
        transfer.kind = "park"
        call.open_transfer = transfer

    def on_unparked_call(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        """A colleague retrieved the parked customer: the park is connected to them. The
        retriever's channel began a call of its own (as a pickup's does): merged here."""
        parkee = self._parkee(msg)
        call = parkee.call
        call.last_event_at = ts
        retriever = self._channels.get(msg.headers.get("RetrieverUniqueid", ""))
        if retriever is not None and retriever.call is not call:
            self._absorb(call, retriever.call)
        transfer = call.open_transfer
        if transfer is None or transfer.kind != "park":
            return
        transfer.completed = True
        transfer.connected_at = ts
        if retriever is not None and retriever.extension is not None:
            transfer.to_ext = retriever.extension
        call.open_transfer = None

    def on_parked_call_timeout(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        """Nobody retrieved it: the parking lot rings the parker back, not a connection."""
        call = self._parkee(msg).call
        call.last_event_at = ts
        if call.open_transfer is not None and call.open_transfer.kind == "park":
            call.open_transfer = None

    def on_confbridge_join(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        """A channel joined a conference (ConfBridge). A colleague dialling in comes with a
        call of its own: it becomes part of the customer's, which stays one call until the
        caller leaves; each leg that joined says so."""
        channel = self._channel(msg, ts, out)
        name = msg.headers["Conference"]
        host = self._conferences.get(name)
        if host is None or self._calls.get(host.record.linkedid) is not host:
            host = self._conferences[name] = channel.call  # the first to join
        elif host is not channel.call:
            if not _has_customer(channel.call):
                self._absorb(host, channel.call)  # a colleague dialled in
            elif not _has_customer(host):
                self._absorb(channel.call, host)  # the customer's call hosts it
                self._conferences[name] = channel.call
            # else two customers' calls: they stay two calls, each judged on its own
        if channel.leg is not None:
            channel.leg.conference = True
        if channel.call.record.conference_at is None:
            channel.call.record.conference_at = ts

    def on_confbridge_end(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        self._conferences.pop(msg.headers.get("Conference", ""), None)

    def _parkee(self, msg: AmiMessage) -> Channel:
        parkee = self._channels.get(msg.headers["ParkeeUniqueid"])
        if parkee is None:
            raise ValueError("parking event for a channel never seen")
        return parkee

    def on_pickup(self, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        picker = self._channel(msg, ts, out)
        target = self._by_channel_name(msg.headers.get("TargetChannel", ""))
        if target is None:
            raise ValueError("Pickup of a channel never seen")
        call = target.call
        if picker.call is not call:
            self._absorb(call, picker.call)
        record = call.record
        if record.answered_at is None:
            picker.answered_at = ts
            if picker.leg is not None:
                picker.leg.answered_at = ts
            record.answered_at = ts
            record.answered_by = picker.extension
            record.picked_up = True
            out.append(CallAnswered.of(record, ts))

    def _absorb(self, into: CallState, other: CallState) -> None:
        """Move ``other``'s channels into ``into``; ``other`` was a step of this call."""
        for channel in list(other.channels.values()):
            channel.call = into
            into.channels[channel.uniqueid] = channel
        other.channels.clear()
        answered = into.record.answered_at
        for leg in other.record.legs:
            if leg.party == "customer" and into.customer is not None:
                leg.party = "outside"  # the other call's callee: not this call's customer
            # A phone that rang in the other call after this one was answered (the colleague
            # of a consultation call) rang for a transfer, not for the caller.
            if answered is not None and leg.rang_at is not None and leg.rang_at >= answered:
                leg.after_answer = True
        into.record.legs.extend(other.record.legs)
        self._calls.pop(other.record.linkedid, None)

    def _by_channel_name(self, name: str) -> Channel | None:
        uniqueid = self._by_name.get(name)
        return None if uniqueid is None else self._channels.get(uniqueid)

    # -- link gaps ----------------------------------------------------------------------

    def _resync(self, listed: Iterable[AmiMessage]) -> list[Output]:
        """After a reconnect: close calls that ended during the gap, adopt the ones still up."""
        out: list[Output] = []
        up: dict[str, AmiMessage] = {}
        for msg in listed:
            uniqueid = msg.headers.get("Uniqueid")
            if uniqueid:
                up[uniqueid] = msg
        for call in list(self._calls.values()):
            vanished = [c for c in call.channels.values() if c.uniqueid not in up]
            for channel in vanished:
                self._drop_channel(channel)
            if vanished:
                call.record.incomplete = True
            if not call.channels:
                self._finish(call, out, incomplete=True)
        tracked = [(self._channels[u], msg) for u, msg in up.items() if u in self._channels]
        self._take_listed(tracked, out)
        for uniqueid, msg in up.items():
            if uniqueid in self._channels:
                continue
            try:
                channel = self._new_channel(msg, self._last_ts, out, seen_start=False)
            except (KeyError, ValueError) as exc:
                self.stats.rejected += 1
                out.append(EventRejected("CoreShowChannel", f"{type(exc).__name__}: {exc}"))
                continue
            if msg.headers.get("BridgeId"):
                channel.bridge = msg.headers["BridgeId"]
                self._bridges.setdefault(channel.bridge, set()).add(uniqueid)
            self._estimate_start(channel.call, _duration(msg.headers.get("Duration")))
        for call in list(self._calls.values()):
            self._note_talk(call)
        return out

    def _take_listed(self, tracked: list[tuple[Channel, AmiMessage]], out: list[Output]) -> None:
        """Channels followed before the gap and still up: their bridge as listed, and a phone
        now Up that was not answered before was answered during the gap (by the one in the
        customer's bridge first). When is not known: the answer is dated at the resync and
        the call's ring time left unknown, so P1 is not judged on it."""
        for channel, msg in tracked:
            bridge = msg.headers.get("BridgeId") or None
            if bridge != channel.bridge:
                if channel.bridge is not None:
                    self._leave_bridge(channel)
                if bridge is not None:
                    channel.bridge = bridge
                    self._bridges.setdefault(bridge, set()).add(channel.uniqueid)
        answered = [
            channel
            for channel, msg in tracked
            if msg.headers.get("ChannelState") == STATE_UP
            and channel.answered_at is None
            and not channel.local
            and channel.uniqueid != channel.call.originator
        ]
        answered.sort(key=lambda c: c.uniqueid not in self._talking_with_customer(c.call))
        for channel in answered:
            record = channel.call.record
            if record.answered_at is None:
                record.ring_started_at = None  # rang, but for how long is not known
            self._answered(channel, self._last_ts, out)

    def _estimate_start(self, call: CallState, up_seconds: float) -> None:
        """An adopted call started ``up_seconds`` before the resync (its oldest channel's
        ``Duration``): estimated from the last event time, or from the next one when no
        event time is known yet (a first connection starts with the resync)."""
        if self._last_ts:
            call.record.started_at = min(call.record.started_at, self._last_ts - up_seconds)
        else:
            linkedid = call.record.linkedid
            self._undated[linkedid] = max(self._undated.get(linkedid, 0.0), up_seconds)

    def _date_adopted(self, ts: float) -> None:
        """The first event time after a resync with no time known: the adopted calls'
        estimated starts, and their last activity (now, not 1970: the sweep keeps them)."""
        for linkedid, up_seconds in self._undated.items():
            call = self._calls.get(linkedid)
            if call is not None:
                call.record.started_at = ts - up_seconds
                call.last_event_at = max(call.last_event_at, ts)
        self._undated.clear()

    def _evict_oldest(self, out: list[Output]) -> None:
        """The cap on calls in progress reached: the call that started first (the calls are
        kept in the order they started) is closed incomplete, as the sweep would close it."""
        oldest = next(iter(self._calls.values()))
        self.stats.capped += 1
        self._finish(oldest, out, incomplete=True)

    def _sweep(self, now: float, out: list[Output]) -> None:
        self._last_sweep = now
        for call in list(self._calls.values()):
            if now - call.last_event_at > MAX_IDLE_SECONDS:
                for channel in list(call.channels.values()):
                    self._drop_channel(channel)
                self._finish(call, out, incomplete=True)

    # -- a bug in a handler -------------------------------------------------------------

    def _quarantine(self, msg: AmiMessage, out: list[Output]) -> list[str]:
        """Close, as incomplete, every open call ``msg`` names: a handler raised a bug on it
        and may have left it half-updated. Its channels and linkedid are buried, so its later
        events are rejected ("event after its channel or call ended") or ignored."""
        closed: list[str] = []
        for call in self._calls_named_by(msg):
            if self._calls.get(call.record.linkedid) is call:
                self._finish(call, out, incomplete=True)
                closed.append(call.record.linkedid)
        return closed

    def _calls_named_by(self, msg: AmiMessage) -> Iterator[CallState]:
        """The calls of the channels and linkedids in ``msg``'s headers (``Uniqueid``,
        ``DestLinkedid``, ``TransfereeChannel``, CEL's ``UniqueID`` ...)."""
        for key, value in msg.headers.items():
            lowered = key.lower()
            channel: Channel | None = None
            if lowered.endswith(("uniqueid", "linkedid")):
                channel = self._channels.get(value)
                call = self._calls.get(value)
                if call is not None:
                    yield call
            elif lowered.endswith("channel"):
                channel = self._by_channel_name(value)
            if channel is not None:
                yield channel.call

    # -- the end of a call ----------------------------------------------------------------

    def _finish(self, call: CallState, out: list[Output], *, incomplete: bool) -> None:
        self._calls.pop(call.record.linkedid, None)
        self._bury(call.record.linkedid)
        for channel in list(call.channels.values()):
            self._drop_channel(channel)
        record = call.record
        if not incomplete and _out_of_order(record):
            incomplete = True  # a hang-up before the start: judged on such facts, it lies
            self.stats.broken_calls += 1
        record.incomplete = incomplete
        _settle(call, record, incomplete=incomplete)
        self.stats.calls_ended += 1
        if incomplete:
            self.stats.incomplete_closed += 1
        out.append(CallEnded(record))


def _settle(call: CallState, record: CallRecord, *, incomplete: bool) -> None:
    """A finished call's outcome: missed and why, and a hang-up by the PBX itself."""
    unanswered = record.answered_at is None and record.direction in ("inbound", "internal")
    queued = record.queue_joined_at is not None
    if unanswered and (call.dial_attempted or queued) and not incomplete:
        record.missed = True
        if call.caller_gave_up and queued and record.ring_started_at is None:
            record.missed_reason = "abandoned_in_queue"
        elif call.caller_gave_up:
            record.missed_reason = "caller_abandoned"
        elif call.ended_by_pbx:
            record.missed_reason = "pbx_restart"
        else:
            record.missed_reason = call.dial_failure or "no_answer"
    answered = record.answered_at is not None
    if call.ended_by_pbx and answered and record.hangup_first == "unknown":
        record.hangup_first = "pbx"


def _out_of_order(record: CallRecord) -> bool:
    """The call's times contradict each other: start, first ring, answer, end out of order."""
    times = [record.started_at, record.ring_started_at, record.answered_at, record.ended_at]
    known = [t for t in times if t is not None]
    return any(later < earlier - _ORDER_SLACK_SECONDS for earlier, later in pairwise(known))


def _has_customer(call: CallState) -> bool:
    """A call with a customer on the public side (an inbound or outbound call)."""
    return call.record.direction in ("inbound", "outbound")


def _duration(text: str | None) -> float:
    """A ``CoreShowChannel`` ``Duration`` (``HH:MM:SS``) in seconds; 0 when absent or odd."""
    try:
        hours, minutes, seconds = (int(part) for part in (text or "").split(":"))
    except ValueError:
        return 0.0
    return float(max(0, hours * 3600 + minutes * 60 + seconds))


def _event_time(msg: AmiMessage) -> float | None:
    """The event's ``Timestamp``, if it is one: a number that is a date (NaN is not)."""
    try:
        ts = float(msg.headers["Timestamp"])
    except (KeyError, ValueError):
        return None
    return ts if _EARLIEST_TS <= ts < _LATEST_TS else None


_Handler = Callable[[Correlator, AmiMessage, float, list[Output]], None]

_HANDLERS: dict[str, _Handler] = {
    "Newchannel": Correlator.on_newchannel,
    "Newstate": Correlator.on_newstate,
    "DialBegin": Correlator.on_dialbegin,
    "DialEnd": Correlator.on_dialend,
    "HangupRequest": Correlator.on_hangup_request,
    "SoftHangupRequest": Correlator.on_soft_hangup_request,
    "Shutdown": Correlator.on_shutdown,
    "Hangup": Correlator.on_hangup,
    "BridgeEnter": Correlator.on_bridge_enter,
    "BridgeLeave": Correlator.on_bridge_leave,
    "Hold": Correlator.on_hold,
    "Unhold": Correlator.on_unhold,
    "BlindTransfer": Correlator.on_blind_transfer,
    "AttendedTransfer": Correlator.on_attended_transfer,
    "Pickup": Correlator.on_pickup,
    "DTMFBegin": Correlator.on_dtmf,
    "DTMFEnd": Correlator.on_dtmf,
    "CEL": Correlator.on_cel,
    "MessageWaiting": Correlator.on_message_waiting,
    "QueueCallerJoin": Correlator.on_queue_caller_join,
    "QueueCallerLeave": Correlator.on_queue_caller_leave,
    "QueueCallerAbandon": Correlator.on_queue_caller_abandon,
    "ParkedCall": Correlator.on_parked_call,
    "UnParkedCall": Correlator.on_unparked_call,
    "ParkedCallTimeOut": Correlator.on_parked_call_timeout,
    "ConfbridgeJoin": Correlator.on_confbridge_join,
    "ConfbridgeEnd": Correlator.on_confbridge_end,
}

# The events the correlator reads; a framer may drop every other one unparsed.
EVENTS_USED: frozenset[str] = frozenset(_HANDLERS)
# FullyBooted too: the live client reads the PBX's uptime in it (PbxRestarted).
EVENT_FILTER = EventFilter(EVENTS_USED | {"FullyBooted"}, {"CEL": _CEL_USED})
