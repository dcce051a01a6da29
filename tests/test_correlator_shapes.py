"""Call shapes of a real office (issue 15), as event tables built from recorded events: the
channels and headers of the shipped recordings, with the steps Asterisk takes for each shape
(read from its source where the documentation is silent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from call_monitor.ami.framing import AmiFramer, AmiMessage
from call_monitor.calls.correlator import EVENT_FILTER, Correlator, Topology
from call_monitor.calls.model import CallEnded, CallRecord, Transfer
from call_monitor.charter.callbacks import CallbackTracker
from call_monitor.charter.judged import JudgedCall
from call_monitor.charter.lines import describe
from call_monitor.charter.rules import judge
from call_monitor.charter.working_hours import WorkingHours
from call_monitor.config import CharterSettings, Settings, default_directory
from call_monitor.directory import Directory
from call_monitor.metrics.families import CallMetrics
from tests.recordings import RECORDINGS
from tests.test_correlator_variants import by_channel, correlate, recorded

DIRECTORY = Directory(default_directory())
TOPOLOGY = Topology(frozenset({"pstn"}), frozenset({"from-pstn"}))


def tracker() -> CallbackTracker:
    settings = Settings()
    return CallbackTracker(settings.callbacks, WorkingHours(settings.working_hours), DIRECTORY)


def sample(metrics: CallMetrics, name: str, department: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"department": department})


def clauses(events: list[AmiMessage]) -> list[tuple[str, bool]]:
    verdict = judge(correlate(list(events)), CharterSettings(), DIRECTORY)
    return [(check.clause, check.met) for check in verdict.checks]


# -- item 2: P7 only where someone talked -------------------------------------------------


def test_a_caller_giving_up_while_it_rings_is_not_judged_on_p7() -> None:
    events = recorded("m_caller_abandons_while_ringing")
    record = correlate(list(events))
    assert (record.missed_reason, record.hangup_first, record.talked) == (
        "caller_abandoned",
        "caller",
        False,
    )
    verdict = judge(record, CharterSettings(), DIRECTORY)
    assert verdict.p7_met is None
    assert verdict.judged
    assert not any(check.clause == "P7" for check in verdict.checks)


def test_p7_is_judged_where_staff_was_bridged_with_the_caller() -> None:
    answered = correlate(list(recorded("a_answer_1ring")))
    assert answered.talked is True
    assert ("P7", True) in clauses(recorded("a_answer_1ring"))
    assert ("P7", False) in clauses(recorded("g1_staff_hangs_up_first"))


def test_an_answer_without_a_bridge_is_no_conversation() -> None:
    """The staff phone answers, but the caller hangs up before the two are bridged."""
    events = recorded("a_answer_1ring")
    cut = next(i for i, e in enumerate(events) if e.event == "BridgeEnter")
    customer, staff = by_channel(events, "PJSIP/pstn"), by_channel(events, "PJSIP/201")
    t = float(events[cut].get("Timestamp"))
    tail = [
        AmiMessage({**customer.headers, "Event": e, "Timestamp": f"{t:.6f}", "Cause": "16"})
        for e in ("HangupRequest", "Hangup")
    ] + [AmiMessage({**staff.headers, "Event": "Hangup", "Timestamp": f"{t + 0.01:.6f}"})]
    record = correlate([*events[:cut], *tail])
    assert (record.answered, record.hangup_first, record.talked) == (True, "caller", False)
    assert judge(record, CharterSettings(), DIRECTORY).p7_met is None


# -- item 1: voicemail or an announcement after an unanswered Dial -------------------------
#
# d_missed_then_callback's first call: Dial(PJSIP/201,20,tT) rings 201 for 20 s, DialEnd
# NOANSWER, 201's channel hangs up (cause 0). There the dialplan hung up the caller; here it
# goes on as `Dial(PJSIP/201,20,tT)` then `VoiceMail(201@default,u)`: app_voicemail answers
# the caller's channel (ast_answer: Newstate Up, CEL ANSWER naming VoiceMail), records, and
# when the caller hangs up publishes the mailbox state with the caller's channel
# (queue_mwi_event(ast_channel_uniqueid(chan), ...): MessageWaiting with its snapshot).

MISSED = "1795847313.56"


def unanswered_dial() -> tuple[list[AmiMessage], float, AmiMessage, AmiMessage]:
    """The first call of d_missed_then_callback up to 201's hang-up after the timeout; the
    time of that hang-up, the caller's Newchannel and its CEL APP_START (Dial)."""
    events = [
        e
        for e in recorded("d_missed_then_callback")
        if MISSED in (e.get("Linkedid"), e.get("LinkedID"))
    ]
    stop = next(i for i, e in enumerate(events) if e.event == "Hangup")
    caller = by_channel(events, "PJSIP/pstn")
    cel = next(e for e in events if e.get("EventName") == "APP_START")
    return events[: stop + 1], float(events[stop].get("Timestamp")), caller, cel


def at(msg: AmiMessage, ts: float, **changes: str) -> AmiMessage:
    return AmiMessage({**msg.headers, "Timestamp": f"{ts:.6f}", **changes})


def caller_hangs_up(caller: AmiMessage, ts: float) -> list[AmiMessage]:
    return [
        at(caller, ts, Event="HangupRequest", ChannelState="6", Cause="16"),
        at(caller, ts + 0.001, Event="Hangup", ChannelState="6", Cause="16"),
    ]


def voicemail_answers(cel: AmiMessage, ts: float) -> AmiMessage:
    """CEL's ANSWER of the caller's channel, answered by VoiceMail."""
    return at(cel, ts, EventName="ANSWER", Application="VoiceMail", AppData="201@default,u")


def voicemail_call() -> tuple[list[AmiMessage], float]:
    """The unanswered dial, then VoiceMail answers the caller, who leaves a message and
    hangs up 14 s later; the time 201 stopped ringing."""
    head, stopped, caller, cel = unanswered_dial()
    tail = [
        at(caller, stopped + 0.002, Event="Newstate", ChannelState="6"),
        voicemail_answers(cel, stopped + 0.002),
        at(
            caller,
            stopped + 14.0,
            Event="MessageWaiting",
            ChannelState="6",
            Mailbox="201@default",
            Waiting="1",
            New="1",
            Old="0",
        ),
        *caller_hangs_up(caller, stopped + 14.0),
    ]
    return [*head, *tail], stopped


def test_voicemail_after_the_dial_is_a_missed_call_with_its_ring_time() -> None:
    events, stopped = voicemail_call()
    record = correlate(events)
    ringing = float(next(e for e in events if e.get("ChannelState") == "5").get("Timestamp"))
    assert record.ring_ended_at == stopped
    assert record.ring_seconds == round(stopped - ringing, 6)  # 20 s, not 34 s
    assert (record.missed, record.missed_reason) == (True, "no_answer")
    assert (record.after_dial, record.voicemail_left) == ("voicemail", True)
    assert (record.hangup_first, record.talked) == ("caller", False)
    verdict = judge(record, CharterSettings(), DIRECTORY)
    assert verdict.rings == 7
    assert verdict.p7_met is None
    assert verdict.checks == ()
    [change] = tracker().on_call(record)
    assert (change.obligation.owner, change.obligation.state) == ("201", "open")
    line = describe(JudgedCall(record, verdict), "en")
    assert "missed: nobody answered, left a voicemail message" in line


def test_the_application_may_be_named_before_the_answer_is_seen() -> None:
    """CEL and the channel's Newstate come from two subscriptions: either may come first.
    Without a message (the caller hung up at the greeting) no message was left."""
    head, stopped, caller, cel = unanswered_dial()
    tail = [
        voicemail_answers(cel, stopped + 0.002),
        at(caller, stopped + 0.003, Event="Newstate", ChannelState="6"),
        *caller_hangs_up(caller, stopped + 3.0),
    ]
    record = correlate([*head, *tail])
    assert (record.after_dial, record.voicemail_left, record.missed_reason) == (
        "voicemail",
        False,
        "no_answer",
    )
    assert record.ring_ended_at == stopped


def test_an_announcement_after_the_dial_then_the_dialplan_hangs_up() -> None:
    """`Dial(...)`, `Playback(closed-message)`, `Hangup()`: Playback answers the caller; the
    dialplan's Hangup is a soft hang-up request, so nobody hung up first."""
    head, stopped, caller, cel = unanswered_dial()
    tail = [
        at(caller, stopped + 0.002, Event="Newstate", ChannelState="6"),
        at(
            cel,
            stopped + 0.002,
            EventName="APP_START",
            Application="Playback",
            AppData="closed-message",
        ),
        at(caller, stopped + 6.0, Event="SoftHangupRequest", ChannelState="6", Cause="16"),
        at(caller, stopped + 6.001, Event="Hangup", ChannelState="6", Cause="16"),
    ]
    record = correlate([*head, *tail])
    assert (record.after_dial, record.missed_reason, record.hangup_first) == (
        "announcement",
        "no_answer",
        "unknown",
    )
    assert record.ring_seconds == round(stopped - record.ring_started_at, 6)  # type: ignore[operator]


def test_voicemail_after_an_ivr_is_known_by_the_hang_up_record() -> None:
    """An IVR answered the caller before the dial (so VoiceMail answers nothing: no Newstate,
    no CEL ANSWER) and cel.conf lists no voicemail app (no APP_START): CEL's HANGUP record of
    the caller's channel, which comes after the caller's HangupRequest, names VoiceMail."""
    head, stopped, caller, cel = unanswered_dial()
    dial = next(i for i, e in enumerate(head) if e.event == "DialBegin")
    answer = float(head[dial].get("Timestamp")) - 0.0005
    ivr = at(caller, answer, Event="Newstate", ChannelState="6")  # the timing moved, not the order
    hung_up = caller_hangs_up(caller, stopped + 20.0)
    in_voicemail = at(cel, stopped + 20.0005, EventName="HANGUP", Application="VoiceMail")
    events = [*head[:dial], ivr, *head[dial:], hung_up[0], in_voicemail, hung_up[1]]
    record = correlate(events)
    assert (record.after_dial, record.missed_reason) == ("voicemail", "no_answer")
    assert record.ring_ended_at == stopped


def test_another_application_answering_the_caller_is_other() -> None:
    head, stopped, caller, _ = unanswered_dial()
    tail = [
        at(caller, stopped + 0.002, Event="Newstate", ChannelState="6"),
        *caller_hangs_up(caller, stopped + 9.0),
    ]
    record = correlate([*head, *tail])
    assert (record.after_dial, record.missed_reason) == ("other", "no_answer")


@pytest.mark.parametrize("recording", sorted(RECORDINGS.glob("*.ami")), ids=lambda p: p.name)
def test_no_recorded_call_went_on_after_the_dial(recording: Path) -> None:
    """None of the recordings has a dialplan step after an unanswered Dial: an outbound
    call's callee answering (its Newstate Up) is the answer, not an application."""
    frames = AmiFramer().feed(recording.read_bytes())
    correlator = Correlator(TOPOLOGY)
    outputs = [o for f in frames if isinstance(f, AmiMessage) for o in correlator.step(f)]
    records = [o.record for o in [*outputs, *correlator.close_all()] if isinstance(o, CallEnded)]
    assert records
    assert [(r.after_dial, r.ring_ended_at) for r in records] == [(None, None)] * len(records)


def test_giving_up_while_it_rings_is_still_abandoned() -> None:
    head, stopped, caller, _ = unanswered_dial()
    ringing = [e for e in head if e.event != "Hangup" and e.get("DialStatus") != "NOANSWER"]
    phone = at(head[-1], stopped - 10.0, Cause="127")  # 201's Hangup: the caller gave up
    record = correlate([*ringing, *caller_hangs_up(caller, stopped - 10.0), phone])
    assert (record.after_dial, record.missed_reason, record.ring_ended_at) == (
        None,
        "caller_abandoned",
        None,
    )


# -- item 5: the consultation that rings long ------------------------------------------------


def test_the_consultation_rung_before_its_dial_begin_is_timed() -> None:
    """f1_attended_transfer_2s with 202's Ringing before the DialBegin that rings it (the
    order of events is not fixed: a third of the burst's calls showed it)."""
    events = recorded("f1_attended_transfer_2s")
    dial = next(i for i, e in enumerate(events) if e.get("DestChannel", "").startswith("PJSIP/202"))
    ring = next(
        i
        for i, e in enumerate(events)
        if e.event == "Newstate" and e.get("Channel").startswith("PJSIP/202")
    )
    ringing = at(events[ring], float(events[dial].get("Timestamp")) - 0.0001)
    reordered = [
        *events[:dial],
        ringing,
        *(e for i, e in enumerate(events[dial:], dial) if i != ring),
    ]
    [transfer] = correlate(reordered).transfers
    assert transfer.target_ring_seconds == round(
        transfer.target_answered_at - ringing_time(ringing),
        6,  # type: ignore[operator]
    )


def ringing_time(msg: AmiMessage) -> float:
    return float(msg.get("Timestamp"))


CONSULT = "1795847383.70"  # the phone's own consultation call: a Linkedid of its own


def test_a_phone_consultation_that_rings_twelve_seconds_reports_its_ring_time() -> None:
    """An attended transfer made by the phone (SIP REFER with Replaces): 201 holds the
    customer and calls 202 itself, a new call with its own Linkedid; 202 rings 12 s and
    answers; 201 completes the transfer 17 s after the hold."""
    record = correlate(phone_transfer("PJSIP/202-00000041", CallerIDNum="202"))
    [moved] = record.transfers
    assert (moved.kind, moved.completed, moved.external) == ("attended", True, False)
    assert (moved.from_ext, moved.to_ext) == ("201", "202")
    assert moved.target_ring_seconds == 12.0
    assert moved.wait_seconds == 17.0  # from the hold to the transfer
    assert record.rang == ["201"]  # 202 rang for the transfer, not for the caller
    assert (record.hangup_first, record.talked) == ("caller", True)
    verdict = judge(record, CharterSettings(), DIRECTORY)
    assert verdict.transfers[0].target_ring_seconds == 12.0
    assert verdict.transfers[0].p4_met is False


def phone_transfer(target: str, *, first: str = "customer", **headers: str) -> list[AmiMessage]:
    """201's phone transfers the customer of f1_attended_transfer_2s to ``target`` (its
    channel name; ``headers``: its other headers), after a consultation call of its own
    (REFER): the target rings 12 s, the transfer completes 17 s after the hold, ``first``
    (the customer or the target) hangs up 23 s later. The consultation call's channels and
    headers are f1's phones'; AttendedTransfer's fields are f1's, with the second transferer
    and the target in the consultation call."""
    events = recorded("f1_attended_transfer_2s")
    hold = next(i for i, e in enumerate(events) if e.event == "Hold")
    head = events[: hold + 1]
    t = float(head[-1].get("Timestamp"))
    staff, customer = by_channel(head, "PJSIP/201"), by_channel(head, "PJSIP/pstn")
    [answered_bridge] = {e.get("BridgeUniqueid") for e in head if e.event == "BridgeEnter"}
    transfer_event = next(e for e in events if e.event == "AttendedTransfer")
    second = phone(staff, "PJSIP/201-00000040", "1795847383.70", Exten="202", ChannelState="4")
    colleague = phone(staff, target, "1795847383.71", **headers)
    consultation = [
        at(second, t + 0.2, Event="Newchannel"),
        *dials(second, colleague, t + 0.21, rings=t + 0.3, answers=t + 12.3),
        at(second, t + 12.31, Event="Newstate", ChannelState="6"),
        at(second, t + 12.32, Event="BridgeEnter", BridgeUniqueid="consult"),
        at(colleague, t + 12.32, Event="BridgeEnter", BridgeUniqueid="consult"),
    ]
    transfer = at(
        transfer_event,
        t + 17.0,
        SecondTransfererChannel=second.get("Channel"),
        SecondTransfererUniqueid=CONSULT,
        SecondTransfererLinkedid=CONSULT,
        SecondBridgeUniqueid="consult",
        TransferTargetChannel=colleague.get("Channel"),
        TransferTargetUniqueid=colleague.get("Uniqueid"),
        TransferTargetLinkedid=CONSULT,
    )
    end = t + 40.0
    hangs_up, other = (customer, colleague) if first == "customer" else (colleague, customer)
    tail = [
        transfer,
        at(staff, t + 17.01, Event="BridgeLeave", BridgeUniqueid=answered_bridge),
        at(staff, t + 17.01, Event="Hangup", Cause="16"),
        at(second, t + 17.01, Event="BridgeLeave", BridgeUniqueid="consult"),
        at(second, t + 17.02, Event="Hangup", Cause="16"),
        at(colleague, t + 17.02, Event="BridgeLeave", BridgeUniqueid="consult"),
        at(colleague, t + 17.03, Event="BridgeEnter", BridgeUniqueid=answered_bridge),
        at(hangs_up, end, Event="HangupRequest", Cause="16"),
        at(hangs_up, end, Event="BridgeLeave", BridgeUniqueid=answered_bridge),
        at(hangs_up, end + 0.01, Event="Hangup", Cause="16"),
        at(other, end + 0.01, Event="BridgeLeave", BridgeUniqueid=answered_bridge),
        at(other, end + 0.02, Event="Hangup", Cause="16"),
    ]
    return [*head, *consultation, *tail]


def dials(
    caller: AmiMessage, callee: AmiMessage, ts: float, *, rings: float, answers: float
) -> list[AmiMessage]:
    """``caller`` dials ``callee``, whose phone rings at ``rings`` and answers at ``answers``,
    as app_dial reports it (the callee's channel, DialBegin, Ringing, Up, DialEnd)."""
    dial = {"DestChannel": callee.get("Channel"), "DestUniqueid": callee.get("Uniqueid")}
    return [
        at(callee, ts, Event="Newchannel", ChannelState="0"),
        at(caller, ts, Event="DialBegin", **dial),
        at(callee, rings, Event="Newstate", ChannelState="5"),
        at(callee, answers, Event="Newstate", ChannelState="6"),
        at(caller, answers, Event="DialEnd", DialStatus="ANSWER", **dial),
    ]


def phone(template: AmiMessage, channel: str, uniqueid: str, **changes: str) -> AmiMessage:
    """A phone channel of the consultation call, with ``template``'s headers."""
    return at(
        template,
        0.0,
        **{"Context": "staff", **changes},
        Channel=channel,
        Uniqueid=uniqueid,
        Linkedid=CONSULT,
    )


# -- item 3: waiting in a queue is not ringing ----------------------------------------------
#
# h2_queue_ringall: QueueCallerJoin, then at once AgentCalled/DialBegin for 201 and 202, both
# ring, 202 answers after 5 s. With every member busy, app_queue calls nobody and nothing at
# all comes on AMI until a member is free: the same events, the calling 30 s later.


def queue_events() -> tuple[list[AmiMessage], int]:
    events = recorded("h2_queue_ringall")
    join = next(i for i, e in enumerate(events) if e.event == "QueueCallerJoin")
    return events, join


def later(events: list[AmiMessage], seconds: float) -> list[AmiMessage]:
    return [at(e, float(e.get("Timestamp")) + seconds) for e in events if e.get("Timestamp")]


def test_the_wait_in_a_queue_is_not_ringing_and_is_measured() -> None:
    events, join = queue_events()
    record = correlate([*events[: join + 1], *later(events[join + 1 :], 30.0)])
    joined = float(events[join].get("Timestamp"))
    assert record.queue_joined_at == joined
    assert record.answered_by == "202"
    first_ring = min(float(e.get("Timestamp")) for e in events if e.get("ChannelState") == "5")
    assert record.ring_started_at == first_ring + 30.0
    assert record.queue_wait_seconds == round(first_ring + 30.0 - joined, 6)  # ~30 s
    assert record.ring_seconds is not None
    assert record.ring_seconds < 6.0  # answered on ring 2: the wait is no ringing
    metrics = CallMetrics(DIRECTORY)
    metrics.observe_call(record, judge(record, CharterSettings(), DIRECTORY))
    assert sample(metrics, "callmon_queue_wait_seconds_count", "민원여권과") == 1.0
    assert (
        sample(metrics, "callmon_queue_wait_seconds_sum", "민원여권과") == record.queue_wait_seconds
    )


def queue_abandon_call() -> list[AmiMessage]:
    """app_queue: the caller hangs up while waiting, 25 s after joining: QueueCallerAbandon
    (Position, OriginalPosition, HoldTime), then the channel's hang-up."""
    events, join = queue_events()
    joined = events[join]
    caller = by_channel(events, "PJSIP/pstn")
    t = float(joined.get("Timestamp")) + 25.0
    abandon = at(joined, t + 0.001, Event="QueueCallerAbandon", OriginalPosition="1", HoldTime="25")
    return [
        *events[: join + 1],
        *caller_hangs_up(caller, t)[:1],
        abandon,
        caller_hangs_up(caller, t)[1],
    ]


def test_a_caller_leaving_the_queue_before_any_phone_rang_is_abandoned_in_the_queue() -> None:
    record = correlate(queue_abandon_call())
    assert (record.missed, record.missed_reason) == (True, "abandoned_in_queue")
    assert record.ring_seconds is None
    assert record.queue_wait_seconds == 25.001
    assert (record.hangup_first, judge(record, CharterSettings(), DIRECTORY).p7_met) == (
        "caller",
        None,
    )
    [change] = tracker().on_call(record)
    assert (change.obligation.owner, change.obligation.owner_kind) == ("민원여권과", "department")
    line = describe(JudgedCall(record, judge(record, CharterSettings(), DIRECTORY)))
    assert "부재중: 대기열에서 기다리다 끊음(벨 울리기 전)" in line


def test_a_caller_leaving_after_the_phones_rang_abandoned_the_call() -> None:
    events, _ = queue_events()
    answer = next(i for i, e in enumerate(events) if e.get("ChannelState") == "6")
    caller = by_channel(events, "PJSIP/pstn")
    t = float(events[answer].get("Timestamp"))
    phones = [
        at(by_channel(events, p), t, Event="Hangup", Cause="127")
        for p in ("PJSIP/201", "PJSIP/202")
    ]
    record = correlate(
        [*events[:answer], caller_hangs_up(caller, t)[0], *phones, caller_hangs_up(caller, t)[1]]
    )
    assert (record.missed_reason, record.queue_wait_seconds is not None) == (
        "caller_abandoned",
        True,
    )


# -- item 7: call parking ---------------------------------------------------------------------
#
# e_blind_transfer: 201 answers, then blind-transfers the customer, here to the parking
# extension 70 instead of 202. res_parking's events carry the parked channel as ``Parkee*``
# and the colleague taking it up as ``Retriever*`` (ast_manager_build_channel_state_string_
# prefix), with no ``Channel`` header; the retriever's channel begins with a Linkedid of its
# own, is answered by ParkedCall, and UnParkedCall comes about 0.5 s after that.

SNAPSHOT = (
    "Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName",
    "ConnectedLineNum", "ConnectedLineName", "Language", "AccountCode", "Context", "Exten",
    "Priority", "Uniqueid", "Linkedid",
)  # fmt: skip
RETRIEVER = "1795847376.70"


def prefixed(msg: AmiMessage, prefix: str) -> dict[str, str]:
    return {prefix + key: msg.get(key, "") for key in SNAPSHOT}


def parked() -> tuple[list[AmiMessage], float, AmiMessage, AmiMessage]:
    """e_blind_transfer to 201's hang-up after the transfer, the transfer going to 70, and
    the park: its time, the customer's channel, the ParkedCall event."""
    events = recorded("e_blind_transfer")
    gone = next(i for i, e in enumerate(events) if e.event == "Hangup")
    head = [
        at(e, float(e.get("Timestamp")), Extension="70") if e.event == "BlindTransfer" else e
        for e in events[: gone + 1]
    ]
    t = float(head[-1].get("Timestamp"))
    customer = by_channel(head, "PJSIP/pstn")
    park = AmiMessage(
        {
            "Event": "ParkedCall",
            "Privilege": "call,all",
            "Timestamp": f"{t + 0.01:.6f}",
            **prefixed(at(customer, t, ChannelState="6", ChannelStateDesc="Up"), "Parkee"),
            "ParkerDialString": "PJSIP/201",
            "Parkinglot": "default",
            "ParkingSpace": "701",
            "ParkingTimeout": "45",
            "ParkingDuration": "0",
        }
    )
    steps = [park, at(customer, t + 0.011, Event="BridgeEnter", BridgeUniqueid="lot")]
    return [*head, *steps], t, customer, park


def park_taken_call() -> tuple[list[AmiMessage], float]:
    """The park, taken up by 202 15.6 s after it began; the customer hangs up after 40 s."""
    events, t, customer, park = parked()
    staff = by_channel(events, "PJSIP/201")
    retriever = at(staff, 0.0, Channel="PJSIP/202-00000040", CallerIDNum="202", Exten="701")
    retriever = at(retriever, 0.0, Uniqueid=RETRIEVER, Linkedid=RETRIEVER)
    unpark = at(park, t + 15.6, Event="UnParkedCall", **prefixed(retriever, "Retriever"))
    taken = [
        at(retriever, t + 15.0, Event="Newchannel", ChannelState="4"),
        at(retriever, t + 15.1, Event="Newstate", ChannelState="6"),
        unpark,
        at(customer, t + 15.61, Event="BridgeLeave", BridgeUniqueid="lot"),
        at(customer, t + 15.62, Event="BridgeEnter", BridgeUniqueid="talk"),
        at(retriever, t + 15.62, Event="BridgeEnter", BridgeUniqueid="talk"),
        *caller_hangs_up(customer, t + 40.0),
        at(retriever, t + 40.01, Event="Hangup", Cause="16"),
    ]
    return [*events, *taken], t


def test_a_park_taken_up_by_a_colleague_is_one_call_and_a_transfer() -> None:
    events, t = park_taken_call()
    record = correlate(events)  # one call: the retriever's was merged into it
    [transfer] = record.transfers
    assert (transfer.kind, transfer.completed) == ("park", True)
    assert (transfer.from_ext, transfer.to_ext) == ("201", "202")
    blind = float(next(e for e in events if e.event == "BlindTransfer").get("Timestamp"))
    assert transfer.wait_seconds == round(t + 15.6 - blind, 6)  # the park to the retrieval
    assert transfer.target_ring_seconds is None  # nothing rang
    assert record.rang == ["201"]
    assert [leg.extension for leg in record.legs if leg.party == "staff"] == ["201", "202"]
    assert (record.talked, record.hangup_first) == (True, "caller")
    verdict = judge(record, CharterSettings(), DIRECTORY)
    assert verdict.transfers[0].p4_met is False  # 15 s parked: over 10 s
    assert verdict.transfers[0].other_department is False


def test_a_park_that_times_out_and_rings_the_parker_back_is_not_connected() -> None:
    events, t, customer, park = parked()
    staff = by_channel(events, "PJSIP/201")
    again = at(staff, 0.0, Channel="PJSIP/201-00000041", Uniqueid="1795847356.71")
    back = [
        at(park, t + 45.0, Event="ParkedCallTimeOut"),
        at(customer, t + 45.01, Event="BridgeLeave", BridgeUniqueid="lot"),
        *dials(customer, again, t + 45.02, rings=t + 45.03, answers=t + 48.0),
        *caller_hangs_up(customer, t + 60.0),
        at(again, t + 60.01, Event="Hangup", Cause="16"),
    ]
    record = correlate([*events, *back])
    [transfer] = record.transfers
    assert (transfer.kind, transfer.completed, transfer.to_ext) == ("park", False, "70")
    assert (transfer.wait_seconds, transfer.target_ring_seconds) == (None, None)
    assert judge(record, CharterSettings(), DIRECTORY).transfers[0].p4_met is False


# -- item 8: a transfer that leaves the office -----------------------------------------------

OUTSIDE = "01099998888"  # a staff member's mobile, another agency


def external_transfer(record: CallRecord, kind: str) -> Transfer:
    """The call's one transfer, a completed one of ``kind`` that left the office."""
    [moved] = record.transfers
    assert (moved.kind, moved.completed) == (kind, True)
    assert (moved.external, moved.to_ext) == (True, OUTSIDE)
    return moved


def test_an_attended_transfer_to_an_outside_number_is_external() -> None:
    """The same phone transfer, to a number on the trunk: the outside party hangs up first."""
    events = phone_transfer(
        "PJSIP/pstn-00000041", first="target", CallerIDNum=OUTSIDE, Context="from-pstn"
    )
    record = correlate(events)
    moved = external_transfer(record, "attended")
    assert moved.wait_seconds == 17.0  # counts for P4 all the same
    parties = [leg.party for leg in record.legs]
    assert parties.count("customer") == 1  # the outside party is no second customer
    assert parties.count("outside") == 1
    assert record.hangup_first == "unknown"  # not "staff": the outside party is none
    verdict = judge(record, CharterSettings(), DIRECTORY)
    assert (verdict.transfers[0].p4_met, verdict.transfers[0].other_department) == (False, None)
    assert "(외부로 연결)" in describe(JudgedCall(record, verdict))


def test_a_blind_transfer_to_an_outside_number_is_external() -> None:
    """e_blind_transfer with 202 replaced by the trunk dialling 010-9999-8888."""
    raw = (RECORDINGS / "e_blind_transfer.ami").read_bytes()
    raw = raw.replace(b"Extension: 202\r\n", f"Extension: {OUTSIDE}\r\n".encode())
    raw = raw.replace(b"PJSIP/202-00000036", b"PJSIP/pstn-00000036")
    events = [f for f in AmiFramer().feed(raw) if isinstance(f, AmiMessage) and f.event]
    record = correlate(list(events))
    moved = external_transfer(record, "blind")
    assert moved.wait_seconds is not None
    assert [leg.party for leg in record.legs] == ["customer", "staff", "outside"]


# -- item 9: a three-way conference (ConfBridge) ----------------------------------------------
#
# a_answer_1ring: 201 answers the customer. Here 201 then takes the customer into a
# conference, ConfBridge(room-201) (the dialplan redirects both channels there), and 202
# dials into it from a call of its own (a Linkedid of its own, answered by ConfBridge).
# app_confbridge's events: Conference, the bridge's state (BridgeUniqueid ...) and the
# channel's snapshot (confbridge_publish_manager_event).

CONF = {"Conference": "room-201", "BridgeUniqueid": "conf-bridge", "BridgeType": "base"}
JOINER = "1795847280.60"


def conference(first: str) -> CallRecord:
    return correlate(conference_call(first))  # one call


def conference_call(first: str) -> list[AmiMessage]:
    """The conference; then ``first`` (201 or 202) hangs up, the customer leaves 10 s
    later, and the one left hangs up after."""
    events = recorded("a_answer_1ring")
    talk = next(i for i, e in enumerate(events) if e.event == "HangupRequest")
    head = events[:talk]
    [bridge] = {e.get("BridgeUniqueid") for e in head if e.event == "BridgeEnter"}
    customer, staff = by_channel(head, "PJSIP/pstn"), by_channel(head, "PJSIP/201")
    t = float(head[-1].get("Timestamp")) + 2.0
    colleague = at(staff, 0.0, Channel="PJSIP/202-00000050", CallerIDNum="202", Exten="8201")
    colleague = at(colleague, 0.0, Uniqueid=JOINER, Linkedid=JOINER)
    moved = [
        step
        for who in (customer, staff)
        for step in (
            at(who, t, Event="BridgeLeave", BridgeUniqueid=bridge),
            at(who, t + 0.01, Event="BridgeEnter", **CONF),
            at(who, t + 0.01, Event="ConfbridgeJoin", **CONF, Admin="No", Muted="No"),
        )
    ]
    joined = [
        at(colleague, t + 5.0, Event="Newchannel", ChannelState="4"),
        at(colleague, t + 5.1, Event="Newstate", ChannelState="6"),
        at(colleague, t + 5.2, Event="BridgeEnter", **CONF),
        at(colleague, t + 5.2, Event="ConfbridgeJoin", **CONF, Admin="No", Muted="No"),
    ]
    leaving = {"201": staff, "202": colleague}
    gone, left = leaving.pop(first), next(iter(leaving.values()))
    ends = [
        *leaves(gone, t + 30.0),
        *leaves(customer, t + 40.0),
        *leaves(left, t + 41.0),
        at(left, t + 41.1, Event="ConfbridgeEnd", **CONF),
    ]
    return [*head, *moved, *joined, *ends]


def leaves(who: AmiMessage, ts: float) -> list[AmiMessage]:
    return [
        at(who, ts, Event="HangupRequest", Cause="16"),
        at(who, ts + 0.01, Event="ConfbridgeLeave", **CONF),
        at(who, ts + 0.01, Event="BridgeLeave", **CONF),
        at(who, ts + 0.02, Event="Hangup", Cause="16"),
    ]


def test_a_conference_stays_one_call_and_says_who_joined() -> None:
    record = conference(first="201")
    assert record.conference == ["201", "202"]
    assert record.conference_at is not None
    assert record.answered_by == "201"
    assert record.rang == ["201"]
    # 201 left while 202 stayed with the caller: the conversation went on; the caller ended it.
    assert (record.hangup_first, record.talked) == ("caller", True)
    assert judge(record, CharterSettings(), DIRECTORY).p7_met is True


def test_the_colleague_leaving_a_conference_first_is_no_staff_hang_up() -> None:
    record = conference(first="202")
    assert (record.conference, record.hangup_first) == (["201", "202"], "caller")


def test_the_framer_keeps_what_the_new_shapes_need() -> None:
    """The events of the shapes above as bytes on the wire, through the framer's filter of
    what the correlator reads (EVENT_FILTER: a CEL record only if DTMF or naming VoiceMail,
    Playback or BackGround): the same calls as unfiltered."""
    for events in (
        voicemail_call()[0],
        queue_abandon_call(),
        park_taken_call()[0],
        conference_call("201"),
    ):
        wire = b"".join(
            b"".join(f"{key}: {value}\r\n".encode() for key, value in e.headers.items()) + b"\r\n"
            for e in events
        )
        kept = AmiFramer(event_filter=EVENT_FILTER).feed(wire)
        assert len(kept) < len(events)  # something was dropped unparsed
        filtered = [f for f in kept if isinstance(f, AmiMessage)]
        assert correlate(list(filtered)) == correlate(list(events))


def test_two_customers_in_one_conference_stay_two_calls() -> None:
    """201 takes a second caller (m_caller_abandons_while_ringing's) into the conference:
    each customer's call stays its own, both in the conference."""
    first = conference_call("201")
    caller = by_channel(recorded("m_caller_abandons_while_ringing"), "PJSIP/pstn")
    t = float(first[-1].get("Timestamp")) - 30.0  # while the conference goes on
    joining = [
        at(caller, t, Event="Newchannel", ChannelState="4"),
        at(caller, t + 0.1, Event="Newstate", ChannelState="6"),
        at(caller, t + 0.2, Event="BridgeEnter", **CONF),
        at(caller, t + 0.2, Event="ConfbridgeJoin", **CONF, Admin="No", Muted="No"),
        *leaves(caller, t + 5.0),
    ]
    correlator = Correlator(TOPOLOGY)
    ended = [
        o.record
        for e in sorted([*first, *joining], key=lambda e: float(e.get("Timestamp") or 0))
        for o in correlator.step(e)
        if isinstance(o, CallEnded)
    ]
    customers = {by_channel(first, "PJSIP/pstn").get("Linkedid"), caller.get("Linkedid")}
    assert sorted(r.linkedid for r in ended) == sorted(customers)
    assert all(r.conference_at is not None for r in ended)
