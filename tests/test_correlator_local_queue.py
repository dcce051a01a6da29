"""A queue whose members are Local channels, as FreePBX builds them.

No recording of this shape ships with the project, so the events are declared here, in
the order and with the headers Asterisk 22 uses for Local channels (compare the
``Local/202@staff`` pair of ``f1_attended_transfer_2s.ami``).
"""

from __future__ import annotations

from call_monitor.ami.framing import AmiMessage
from call_monitor.calls.correlator import Correlator, Topology
from call_monitor.calls.model import CallEnded, CallRecord

T0 = 1795850000.0
CALLER = ("PJSIP/pstn-00000100", "1795850000.1")
CHANNELS = {
    "caller": CALLER,
    "l201a": ("Local/201@from-queue-00000010;1", "1795850000.2"),
    "l201b": ("Local/201@from-queue-00000010;2", "1795850000.3"),
    "p201": ("PJSIP/201-00000101", "1795850000.4"),
    "l202a": ("Local/202@from-queue-00000011;1", "1795850000.5"),
    "l202b": ("Local/202@from-queue-00000011;2", "1795850000.6"),
    "p202": ("PJSIP/202-00000102", "1795850000.7"),
}


def ev(t: float, event: str, who: str, **headers: str) -> AmiMessage:
    name, uid = CHANNELS[who]
    context = "from-pstn" if who == "caller" else "from-queue"
    base = {
        "Event": event,
        "Timestamp": f"{T0 + t:.6f}",
        "Channel": name,
        "ChannelState": headers.pop("ChannelState", "6"),
        "CallerIDNum": "01099998888" if who == "caller" else who[-3:],
        "Context": context,
        "Exten": "710",
        "Uniqueid": uid,
        "Linkedid": CALLER[1],
    }
    return AmiMessage({**base, **headers})


def dial(t: float, event: str, src: str, dst: str, **headers: str) -> AmiMessage:
    name, uid = CHANNELS[dst]
    return ev(t, event, src, DestChannel=name, DestUniqueid=uid, DestLinkedid=CALLER[1], **headers)


def queue_call(staff_hangs_up: bool) -> list[AmiMessage]:
    events = [
        ev(0.000, "Newchannel", "caller", ChannelState="4"),
        ev(0.003, "Newchannel", "l201a", ChannelState="0"),
        ev(0.003, "Newchannel", "l201b", ChannelState="4"),
        dial(0.003, "DialBegin", "caller", "l201a"),
        ev(0.004, "Newchannel", "l202a", ChannelState="0"),
        ev(0.004, "Newchannel", "l202b", ChannelState="4"),
        dial(0.004, "DialBegin", "caller", "l202a"),
        ev(0.005, "Newchannel", "p201", ChannelState="0"),
        # Ringing before DialBegin, as a third of the burst calls showed.
        ev(0.007, "Newstate", "p201", ChannelState="5"),
        dial(0.007, "DialBegin", "l201b", "p201"),
        ev(0.007, "Newstate", "l201a", ChannelState="5"),
        ev(0.006, "Newchannel", "p202", ChannelState="0"),
        dial(0.006, "DialBegin", "l202b", "p202"),
        ev(0.008, "Newstate", "p202", ChannelState="5"),
        ev(0.008, "Newstate", "l202a", ChannelState="5"),
        ev(4.000, "Newstate", "p202"),
        dial(4.000, "DialEnd", "l202b", "p202", DialStatus="ANSWER"),
        ev(4.001, "BridgeEnter", "p202", BridgeUniqueid="inner"),
        ev(4.001, "BridgeEnter", "l202b", BridgeUniqueid="inner"),
        ev(4.002, "Newstate", "l202a"),
        dial(4.002, "DialEnd", "caller", "l202a", DialStatus="ANSWER"),
        dial(4.002, "DialEnd", "caller", "l201a", DialStatus="CANCEL"),
        ev(4.003, "Hangup", "p201", ChannelState="5", Cause="26"),
        ev(4.003, "Hangup", "l201b", Cause="26"),
        ev(4.003, "Hangup", "l201a", Cause="26"),
        ev(4.004, "Newstate", "caller"),
        ev(4.005, "BridgeEnter", "l202a", BridgeUniqueid="outer"),
        ev(4.005, "BridgeEnter", "caller", BridgeUniqueid="outer"),
    ]
    first = "p202" if staff_hangs_up else "caller"
    events += [
        ev(10.0, "HangupRequest", first, Cause="16"),
        ev(10.001, "BridgeLeave", "p202", BridgeUniqueid="inner"),
        ev(10.001, "BridgeLeave", "caller", BridgeUniqueid="outer"),
        ev(10.002, "Hangup", "p202", Cause="16"),
        ev(10.002, "Hangup", "l202b", Cause="16"),
        ev(10.003, "Hangup", "l202a", Cause="16"),
        ev(10.003, "Hangup", "caller", Cause="16"),
    ]
    return events


def correlate(events: list[AmiMessage]) -> CallRecord:
    correlator = Correlator(Topology(frozenset({"pstn"}), frozenset({"from-pstn"})))
    ended = [o for e in events for o in correlator.step(e) if isinstance(o, CallEnded)]
    [call] = ended
    return call.record


def test_local_members_ring_and_answer_as_their_phones() -> None:
    record = correlate(queue_call(staff_hangs_up=False))
    assert record.direction == "inbound"
    assert record.answered_by == "202"
    assert record.rang == ["201", "202"]
    assert record.ring_seconds == 4.0 - 0.007
    assert record.missed is False
    assert record.hangup_first == "caller"
    assert record.incomplete is False


def test_staff_hang_up_is_seen_through_the_local_pair() -> None:
    """202 sits in the inner bridge with Local;2; the customer in the outer one with ;1."""
    record = correlate(queue_call(staff_hangs_up=True))
    assert record.hangup_first == "staff"
