"""Call shapes no recording shows, built from real recorded events: the same channels and
headers, with the ending Asterisk gives those shapes (an abandoned attended transfer, a
busy phone)."""

from __future__ import annotations

from call_monitor.ami.framing import AmiFramer, AmiMessage
from call_monitor.ami.stream import StreamItem
from call_monitor.calls.correlator import Correlator, Topology
from call_monitor.calls.model import CallEnded, CallRecord
from call_monitor.charter.rules import judge
from call_monitor.config import CharterSettings, default_directory
from call_monitor.directory import Directory
from tests.recordings import RECORDINGS


def recorded(name: str) -> list[AmiMessage]:
    frames = AmiFramer().feed((RECORDINGS / f"{name}.ami").read_bytes())
    return [f for f in frames if isinstance(f, AmiMessage) and f.event]


def like(msg: AmiMessage, ts: float, **changes: str) -> AmiMessage:
    return AmiMessage({**msg.headers, "Timestamp": f"{ts:.6f}", **changes})


def by_channel(events: list[AmiMessage], prefix: str) -> AmiMessage:
    return next(e for e in events if e.get("Channel").startswith(prefix) and e.get("Uniqueid"))


def correlate(events: list[StreamItem]) -> CallRecord:
    correlator = Correlator(Topology(frozenset({"pstn"}), frozenset({"from-pstn"})))
    [ended] = [o for e in events for o in correlator.step(e) if isinstance(o, CallEnded)]
    return ended.record


def test_abandoned_attended_transfer_is_reported_not_met() -> None:
    """201 puts the customer on hold and rings 202, who answers and hangs up again; 201
    takes the customer back. No AttendedTransfer event ever comes."""
    events = recorded("f1_attended_transfer_2s")
    cut = next(i for i, e in enumerate(events) if e.event == "HangupRequest")
    head = events[:cut]
    t = float(head[-1].get("Timestamp"))
    staff, colleague = by_channel(head, "PJSIP/201"), by_channel(head, "PJSIP/202")
    customer = by_channel(head, "PJSIP/pstn")
    local1 = by_channel(head, "Local/202@staff-00000004;1")
    local2 = by_channel(head, "Local/202@staff-00000004;2")
    staff_bridges = [
        e.get("BridgeUniqueid")
        for e in head
        if e.event == "BridgeEnter" and e.get("Channel") == staff.get("Channel")
    ]
    first_bridge, consult = staff_bridges  # talking with the customer, then consulting
    tail = [
        like(colleague, t + 2.0, Event="HangupRequest", Cause="16"),
        like(colleague, t + 2.0, Event="Hangup", Cause="16"),
        like(local2, t + 2.0, Event="Hangup", Cause="16"),
        like(local1, t + 2.0, Event="BridgeLeave", BridgeUniqueid=consult),
        like(local1, t + 2.0, Event="Hangup", Cause="16"),
        like(staff, t + 2.1, Event="BridgeLeave", BridgeUniqueid=consult),
        like(staff, t + 2.1, Event="BridgeEnter", BridgeUniqueid=first_bridge),
        like(staff, t + 2.2, Event="Unhold"),
        like(customer, t + 8.0, Event="HangupRequest", Cause="16"),
        like(customer, t + 8.0, Event="BridgeLeave", BridgeUniqueid=first_bridge),
        like(staff, t + 8.0, Event="BridgeLeave", BridgeUniqueid=first_bridge),
        like(staff, t + 8.0, Event="Hangup", Cause="16"),
        like(customer, t + 8.0, Event="Hangup", Cause="16"),
    ]
    record = correlate([*head, *tail])
    assert record.answered_by == "201"
    [transfer] = record.transfers
    assert (transfer.kind, transfer.completed, transfer.to_ext) == ("attended", False, "202")
    assert transfer.wait_seconds is None
    assert transfer.target_ring_seconds is not None  # 202 did ring and answer
    assert record.hangup_first == "caller"
    verdict = judge(record, CharterSettings(), Directory(default_directory()))
    assert verdict.transfers[0].p4_met is False
    assert ("P4", False) in {(c.clause, c.met) for c in verdict.checks}


def test_busy_phone_is_a_missed_call() -> None:
    events = recorded("m_caller_abandons_while_ringing")
    begin = next(i for i, e in enumerate(events) if e.event == "DialBegin")
    head = events[: begin + 1]
    t = float(head[-1].get("Timestamp"))
    phone, customer = by_channel(head, "PJSIP/202"), by_channel(head, "PJSIP/pstn")
    dial_end = like(head[-1], t + 0.05, Event="DialEnd", DialStatus="BUSY")
    tail = [
        dial_end,
        like(phone, t + 0.05, Event="Hangup", Cause="17"),
        like(customer, t + 0.06, Event="SoftHangupRequest", Cause="16"),
        like(customer, t + 0.06, Event="Hangup", Cause="17"),
    ]
    record = correlate([*head, *tail])
    assert record.missed is True
    assert record.missed_reason == "busy"
    assert record.ring_seconds is None  # it never rang
    assert record.hangup_first == "unknown"
