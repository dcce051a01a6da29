"""Whatever order, loss or repetition the events come in, the correlator never crashes,
never leaks calls, and one bad call never blocks the others."""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from call_monitor.ami.framing import AmiFramer, AmiMessage
from call_monitor.ami.stream import LinkDown, LinkUp, PbxRestarted, Resync, StreamItem
from call_monitor.calls import correlator as correlator_module
from call_monitor.calls.correlator import Correlator, EventRejected, Output, Topology
from call_monitor.calls.model import CallEnded, CallStarted
from tests.recordings import RECORDINGS
from tests.test_correlator_shapes import (
    OUTSIDE,
    conference_call,
    park_taken_call,
    phone_transfer,
    queue_abandon_call,
    voicemail_call,
)

TOPOLOGY = Topology(frozenset({"pstn"}), frozenset({"from-pstn"}))
SOURCES = ["e_blind_transfer", "f1_attended_transfer_2s", "i1_group_pickup", "h2_queue_ringall"]


@cache
def events(name: str) -> tuple[AmiMessage, ...]:
    frames = AmiFramer().feed((RECORDINGS / f"{name}.full.ami").read_bytes())
    return tuple(f for f in frames if isinstance(f, AmiMessage) and f.event)


# The call shapes of issue 15, as event tables (tests/test_correlator_shapes.py): voicemail
# after the dial (CEL ANSWER, MessageWaiting), a queue left before any phone rang
# (QueueCallerJoin/Abandon), a park taken up (ParkedCall/UnParkedCall, a merged call), a
# phone's transfer out of the office (a merged consultation call), a conference a
# colleague dialled into (ConfbridgeJoin, a merged call).
SHAPES = {
    "voicemail": lambda: voicemail_call()[0],
    "queue_abandon": queue_abandon_call,
    "park": lambda: park_taken_call()[0],
    "external": lambda: phone_transfer(
        "PJSIP/pstn-00000041", first="target", CallerIDNum=OUTSIDE, Context="from-pstn"
    ),
    "conference": lambda: conference_call("201"),
}


@cache
def shape(name: str) -> tuple[AmiMessage, ...]:
    return tuple(SHAPES[name]())


def run(items: list[StreamItem]) -> tuple[Correlator, list[object]]:
    correlator = Correlator(TOPOLOGY)
    out: list[object] = []
    for item in items:
        out += correlator.step(item)
    out += correlator.close_all()
    return correlator, out


@settings(max_examples=150, deadline=None)
@given(st.data(), st.booleans())
def test_shuffled_truncated_duplicated_streams_never_crash(
    data: st.DataObject, new_shapes: bool
) -> None:
    if new_shapes:
        source = list(shape(data.draw(st.sampled_from(sorted(SHAPES)))))
    else:
        source = list(events(data.draw(st.sampled_from(SOURCES))))
    start = data.draw(st.integers(0, len(source) - 1))
    stop = data.draw(st.integers(start, len(source)))
    items: list[StreamItem] = list(source[start:stop])
    duplicates = data.draw(st.lists(st.sampled_from(source), max_size=20))
    items += duplicates
    items = data.draw(st.permutations(items))
    if data.draw(st.booleans()):
        items.insert(len(items) // 2, LinkDown("test"))
        items.insert(len(items) // 2 + 1, LinkUp())
        items.insert(len(items) // 2 + 2, Resync(()))
    correlator, out = run(items)
    assert correlator.calls_in_progress == 0  # close_all leaves nothing behind
    ended = [o for o in out if isinstance(o, CallEnded)]
    assert len({e.record.linkedid for e in ended}) == len(ended)


def test_a_bad_event_is_rejected_and_other_calls_go_on() -> None:
    good = list(events("e_blind_transfer"))
    bad = AmiMessage({"Event": "Newstate", "Timestamp": "not a time", "Uniqueid": "x"})
    no_uid = AmiMessage({"Event": "Hangup", "Timestamp": "1.0"})
    items: list[StreamItem] = [bad, no_uid, *good]
    _, out = run(items)
    assert sum(isinstance(o, EventRejected) for o in out) == 2
    [ended] = [o for o in out if isinstance(o, CallEnded)]
    assert ended.record.answered_by == "201"
    assert ended.record.incomplete is False


def test_resync_closes_calls_that_ended_during_the_gap() -> None:
    source = list(events("e_blind_transfer"))
    # Up to the first answer, then the link drops and the PBX reports nothing up.
    answer = next(i for i, e in enumerate(source) if e.get("ChannelState") == "6")
    items: list[StreamItem] = [*source[: answer + 1], LinkDown("drop"), LinkUp(), Resync(())]
    correlator = Correlator(TOPOLOGY)
    out: list[object] = []
    for item in items:
        out += correlator.step(item)
    [ended] = [o for o in out if isinstance(o, CallEnded)]
    assert ended.record.incomplete is True
    assert correlator.calls_in_progress == 0


def test_a_timestamp_that_is_no_date_rejects_its_event() -> None:
    """``float()`` takes ``nan``, ``inf`` and ``1e300``: the call's times then failed every
    consumer that makes them dates (replay's JSON, the store), so they are refused here."""
    for stamp in ("nan", "inf", "-inf", "1e300", "-5"):
        source = list(events("e_blind_transfer"))
        odd = next(i for i, e in enumerate(source) if e.event == "Unhold")
        source[odd] = AmiMessage({**source[odd].headers, "Timestamp": stamp})
        _, out = run(list(source))
        [rejected] = [o for o in out if isinstance(o, EventRejected)]
        assert (rejected.event, rejected.reason) == ("Unhold", "no valid Timestamp header")
        [ended] = [o for o in out if isinstance(o, CallEnded)]
        assert ended.record.answered_by == "201"  # the call went on without it
        assert ended.record.incomplete is True  # but lost a fact: never judged


def first_time(source: list[AmiMessage]) -> float:
    return next(float(e.get("Timestamp")) for e in source if e.get("Timestamp"))


def shifted(message: AmiMessage, seconds: float) -> AmiMessage:
    if "Timestamp" not in message.headers:
        return message
    stamp = float(message.headers["Timestamp"]) + seconds
    return AmiMessage({**message.headers, "Timestamp": f"{stamp:.6f}"})


def test_a_bad_time_on_the_ringing_keeps_the_call_from_judgement() -> None:
    """Issue 14, item 2: ``notanumber`` on the ringing Newstate was counted, then the call
    stored with ring_seconds 0.0 (answered "without ringing") and P1 met."""
    source = list(events("e_blind_transfer"))
    ring = next(i for i, e in enumerate(source) if e.get("ChannelState") == "5")
    source[ring] = AmiMessage({**source[ring].headers, "Timestamp": "notanumber"})
    correlator, out = run(list(source))
    [ended] = [o for o in out if isinstance(o, CallEnded)]
    assert ended.record.incomplete is True
    assert correlator.stats.bad_times == 1


@pytest.mark.parametrize("seconds", [99999999999 - 1.8e9, 2 * 86400.0, -2 * 86400.0])
def test_one_far_event_time_is_rejected_and_moves_no_clock(seconds: float) -> None:
    """Issue 14, items 1 and 2: one unrelated event stamped far away (99999999999, days
    ahead or behind) moved the sweep's clock, closed the call up then, and no sweep ever
    ran again. It is rejected; the call around it is measured as if it never came."""
    source = list(events("e_blind_transfer"))
    middle = len(source) // 2
    stamp = f"{first_time(source) + seconds:.6f}"
    stray = AmiMessage(
        {"Event": "Newchannel", "Uniqueid": "9.9", "Channel": "PJSIP/x-1", "Timestamp": stamp}
    )
    correlator, out = run([*source[:middle], stray, *source[middle:]])
    rejected = [o for o in out if isinstance(o, EventRejected)]
    assert len(rejected) == correlator.stats.bad_times == 1
    ended = {o.record.linkedid: o.record for o in out if isinstance(o, CallEnded)}
    call = ended[next(e.get("Linkedid") for e in source if e.get("Linkedid"))]
    assert (call.incomplete, call.answered_by) == (False, "201")
    assert all(r.incomplete for k, r in ended.items() if k != call.linkedid)  # the stray
    # The sweep still runs after it: a call idle past MAX_IDLE_SECONDS is closed.
    again = Correlator(TOPOLOGY)
    later = [
        shifted(
            AmiMessage(
                {**stray.headers, "Uniqueid": f"8.{n}", "Timestamp": f"{first_time(source):.6f}"}
            ),
            correlator_module.MAX_IDLE_SECONDS + 120 + n,
        )
        for n in range(2)
    ]
    swept: list[Output] = []
    for item in [*source[: middle - 1], stray, *later]:
        swept += again.step(item)
    assert call.linkedid in [o.record.linkedid for o in swept if isinstance(o, CallEnded)]
    assert again.calls_in_progress == 2  # the two new calls only (the stray one closed)


def another_call(message: AmiMessage) -> AmiMessage:
    """The same event for a call of other ids."""
    ids = {
        k: f"7{v}"
        for k, v in message.headers.items()
        if k.lower().endswith(("uniqueid", "linkedid"))
    }
    return AmiMessage({**message.headers, **ids})


def test_a_quiet_night_is_no_outlier() -> None:
    """Hours without an event, then the next call: both taken, nothing rejected."""
    source = list(events("e_blind_transfer"))
    moved = [another_call(shifted(e, 10 * 3600.0)) for e in source]
    correlator, out = run([*source, *moved])
    assert not [o for o in out if isinstance(o, EventRejected)]
    assert [o.record.incomplete for o in out if isinstance(o, CallEnded)] == [False, False]
    assert correlator.stats.bad_times == 0


def test_a_clock_set_back_is_taken_after_a_few_events() -> None:
    source = list(events("e_blind_transfer"))
    moved = [another_call(shifted(e, -86400.0)) for e in source]
    correlator, out = run([*source, *moved])
    rejected = [o for o in out if isinstance(o, EventRejected)]
    assert len(rejected) == correlator_module._REANCHOR_AFTER - 1
    assert correlator.stats.bad_times == len(rejected)


def test_a_hangup_before_the_start_leaves_the_call_unjudged() -> None:
    """Issue 14, item 2: stored with ended_at < started_at before."""
    source = list(events("e_blind_transfer"))
    last = max(i for i, e in enumerate(source) if e.event == "Hangup")
    source[last] = shifted(source[last], -600.0)
    correlator, out = run(list(source))
    [ended] = [o for o in out if isinstance(o, CallEnded)]
    assert ended.record.incomplete is True
    assert correlator.stats.broken_calls == 1


def test_a_handler_bug_closes_its_call_and_only_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A handler that raises something other than KeyError or ValueError (a bug) after it
    changed the call: the call is closed at once, incomplete; its later events are rejected
    as events of an ended call, they cannot hit the bug again; the overlapping calls go on."""
    burst = list(events("j_burst_50"))
    clean = {e.record.linkedid: e.record for e in run(list(burst))[1] if isinstance(e, CallEnded)}
    bad = "1795847574.110"
    newstate = correlator_module._HANDLERS["Newstate"]

    def buggy(self: Correlator, msg: AmiMessage, ts: float, out: list[Output]) -> None:
        newstate(self, msg, ts, out)
        if msg.headers.get("Linkedid") == bad:
            raise ZeroDivisionError("a bug")

    monkeypatch.setitem(correlator_module._HANDLERS, "Newstate", buggy)
    bad_events = [e for e in burst if e.get("Linkedid") == bad]
    first_ring = next(e for e in bad_events if e.event == "Newstate")
    later = bad_events[bad_events.index(first_ring) + 1 :]
    assert later, "the call had more to say after the bug"
    correlator, out = run(list(burst))

    [failed] = [o for o in out if isinstance(o, EventRejected) and o.error is not None]
    assert (failed.event, failed.linkedid) == ("Newstate", bad)
    assert isinstance(failed.error, ZeroDivisionError)
    assert correlator.stats.handler_errors == 1
    ended = {e.record.linkedid: e.record for e in out if isinstance(e, CallEnded)}
    assert ended.keys() == clean.keys()
    assert ended[bad].incomplete is True
    assert ended[bad].ended_at is None  # closed by the bug, not by its hang-up
    assert all(ended[k] == clean[k] for k in clean if k != bad)
    # Its later events (the dialled phone's, the hang-ups) neither raised again nor brought
    # it back: one start, one end; any turned away were turned away as an ended call's.
    assert [o.linkedid for o in out if isinstance(o, CallStarted)].count(bad) == 1
    assert [o.record.linkedid for o in out if isinstance(o, CallEnded)].count(bad) == 1
    rejected = [o for o in out if isinstance(o, EventRejected) and o.error is None]
    assert all(o.reason == "ValueError: event after its channel or call ended" for o in rejected)


def test_calls_in_progress_are_capped_the_oldest_closed_and_counted() -> None:
    """Issue 14, item 8: calls that never end grew memory without bound (the 4 h sweep
    of event time only)."""
    stamp = first_time(list(events("e_blind_transfer")))
    correlator = Correlator(TOPOLOGY, max_calls=10)
    out: list[Output] = []
    for n in range(25):
        out += correlator.step(
            AmiMessage(
                {
                    "Event": "Newchannel",
                    "Uniqueid": f"{stamp:.0f}.{n}",
                    "Channel": f"PJSIP/pstn-{n:08x}",
                    "Context": "from-pstn",
                    "Timestamp": f"{stamp + n:.6f}",
                }
            )
        )
    assert correlator.calls_in_progress == 10
    assert correlator.stats.capped == 15
    closed = [o.record for o in out if isinstance(o, CallEnded)]
    assert [r.linkedid for r in closed] == [f"{stamp:.0f}.{n}" for n in range(15)]
    assert all(r.incomplete and not r.missed for r in closed)


def listed(events_before: list[AmiMessage], bridge: str) -> Resync:
    """What CoreShowChannels answers for the channels of ``events_before``: all Up, bridged."""
    channels: dict[str, AmiMessage] = {}
    for event in events_before:
        if event.event == "Newchannel":
            channels[event.get("Uniqueid")] = AmiMessage(
                {
                    "Event": "CoreShowChannel",
                    "Channel": event.get("Channel"),
                    "ChannelState": "6",
                    "Context": event.get("Context"),
                    "Uniqueid": event.get("Uniqueid"),
                    "Linkedid": event.get("Linkedid"),
                    "Duration": "00:00:05",
                    "BridgeId": bridge,
                }
            )
    return Resync(tuple(channels.values()))


def test_an_answer_in_a_link_gap_is_an_answer_of_unknown_ring_time() -> None:
    """Issue 14, item 10: the link down while the phone was answered; the resync listed both
    channels Up and bridged, yet the call was stored missed (caller_abandoned) with a false
    callback owed. It is answered, by the phone that is Up, its ring time unknown."""
    source = list(events("a_answer_1ring"))
    answer = next(
        i
        for i, e in enumerate(source)
        if e.event == "Newstate"
        and e.get("ChannelState") == "6"
        and e.get("Uniqueid") != e.get("Linkedid")
    )
    entered = [i for i, e in enumerate(source) if e.event == "BridgeEnter"]
    bridge = source[entered[-1]].get("BridgeUniqueid")
    before, after = source[:answer], source[entered[-1] + 1 :]
    items: list[StreamItem] = [*before, LinkDown("drop"), LinkUp(), listed(before, bridge), *after]
    _, out = run(items)
    [ended] = [o for o in out if isinstance(o, CallEnded)]
    record = ended.record
    assert (record.answered_by, record.missed, record.incomplete) == ("201", False, False)
    assert (record.ring_started_at, record.ring_seconds) == (None, None)  # P1 not judged
    assert record.hangup_first != "unknown"  # the bridge was taken: who hung up is known


def pbx_event(name: str, ts: float, **headers: str) -> AmiMessage:
    return AmiMessage({"Event": name, "Timestamp": f"{ts:.6f}", **headers})


def test_a_pbx_restart_while_ringing_is_a_miss_still_owed_a_callback() -> None:
    """Issue 14, item 11: a call ringing at ``core restart now`` was stored as an ordinary
    no_answer miss; it is missed for the restart (and still owed a callback)."""
    source = list(events("a_answer_1ring"))
    ring = next(i for i, e in enumerate(source) if e.get("ChannelState") == "5")
    ts = float(source[ring].get("Timestamp"))
    items: list[StreamItem] = [*source[: ring + 1], pbx_event("Shutdown", ts + 1, Restart="True")]
    correlator, out = run(items)
    [ended] = [o for o in out if isinstance(o, CallEnded)]
    assert (ended.record.missed, ended.record.missed_reason) == (True, "pbx_restart")
    assert ended.record.incomplete is False
    assert correlator.stats.pbx_restarts == 1
    assert correlator.calls_in_progress == 0


def test_a_pbx_restart_while_talking_is_a_hangup_by_the_pbx() -> None:
    source = list(events("a_answer_1ring"))
    entered = max(i for i, e in enumerate(source) if e.event == "BridgeEnter")
    ts = float(source[entered].get("Timestamp")) + 5
    talking = source[: entered + 1]
    uids = {e.get("Uniqueid") for e in talking if e.event == "Newchannel"}
    down: list[StreamItem] = []
    for uid in sorted(uids):
        down.append(pbx_event("SoftHangupRequest", ts, Uniqueid=uid, Cause="4"))
    for uid in sorted(uids):
        down.append(pbx_event("Hangup", ts, Uniqueid=uid, Cause="16"))
    _, out = run([*talking, *down])
    [ended] = [o for o in out if isinstance(o, CallEnded)]
    assert (ended.record.hangup_first, ended.record.answered_by) == ("pbx", "201")
    assert ended.record.incomplete is False


def test_a_restart_seen_at_the_next_login_ends_the_calls_in_flight() -> None:
    source = list(events("a_answer_1ring"))
    ring = next(i for i, e in enumerate(source) if e.get("ChannelState") == "5")
    items: list[StreamItem] = [*source[: ring + 1], LinkDown("x"), LinkUp(), PbxRestarted()]
    correlator, out = run([*items, Resync(())])
    [ended] = [o for o in out if isinstance(o, CallEnded)]
    assert ended.record.missed_reason == "pbx_restart"
    assert correlator.stats.pbx_restarts == 1


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_new_call_shapes_interleaved_are_each_the_call_they_are_alone(
    data: st.DataObject,
) -> None:
    """Calls of the new shapes going on at once (their events interleaved in any way, each
    call's in its order) come out as each does alone: the merges of a park's retriever, a
    phone's consultation call and a conference's guest take no other call's channels."""
    names = data.draw(
        st.lists(st.sampled_from(sorted(SHAPES)), min_size=2, max_size=5, unique=True)
    )
    alone: dict[str, object] = {}
    for name in names:
        [ended] = [o for o in run(list(shape(name)))[1] if isinstance(o, CallEnded)]
        alone[ended.record.linkedid] = ended.record
    queues = [list(shape(name)) for name in names]
    merged: list[StreamItem] = []
    while any(queues):
        queue = data.draw(st.sampled_from([q for q in queues if q]))
        merged.append(queue.pop(0))
    _, out = run(merged)
    together = {o.record.linkedid: o.record for o in out if isinstance(o, CallEnded)}
    assert together == alone
    assert not [o for o in out if isinstance(o, EventRejected)]
