"""Whatever order, loss or repetition the events come in, the correlator never crashes,
never leaks calls, and one bad call never blocks the others."""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from call_monitor.ami.framing import AmiFramer, AmiMessage
from call_monitor.ami.stream import LinkDown, LinkUp, Resync, StreamItem
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
        assert ended.record.incomplete is False  # the call went on without it


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
