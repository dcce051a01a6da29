"""Every recording, both the monitor's stream and the read=all one, against its SIP truth.

Truth comes from what the SIP phones did (``truth.json``: the scripted delays and SIPp's
own timeline), never from the AMI events the monitor reads.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from call_monitor.charter.judged import JudgedCall, call_report
from call_monitor.config import Settings
from call_monitor.daemon.pipeline import replay
from tests.recordings import SCENARIOS, dialogs, sip_time, streams, truth

RING_TOLERANCE = 0.05
TRANSFER_TOLERANCE = 0.2
KINDS = ["ami", "full"]


def run(paths: list[Path]) -> list[dict[str, Any]]:
    calls = [r for r in replay(paths, Settings()) if isinstance(r, JudgedCall)]
    return [call_report(c.record, c.verdict) for c in calls]


def only_inbound(calls: list[dict[str, Any]]) -> dict[str, Any]:
    inbound = [c for c in calls if c["direction"] == "inbound"]
    assert len(inbound) == 1, calls
    return inbound[0]


def expected_rings(seconds: float) -> int:
    return math.floor(seconds / 3.0) + 1


def check_answered(call: dict[str, Any], staff: str, ring_s: float, hangup: str) -> None:
    assert call["answered_by"] == staff
    assert call["missed"] is False
    assert call["incomplete"] is False
    assert call["ring_seconds"] == pytest.approx(ring_s, abs=RING_TOLERANCE)
    assert call["rings"] == expected_rings(ring_s)
    assert call["p1_met"] is (expected_rings(ring_s) <= 2)
    assert call["apology_expected"] is (expected_rings(ring_s) >= 3)
    assert call["hangup_first"] == hangup
    assert call["p7_met"] is (hangup == "caller")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "scenario",
    ["a_answer_1ring", "c_answer_3rings_breach", "g1_staff_hangs_up_first"],
)
def test_direct_call(scenario: str, kind: str) -> None:
    t = truth(scenario)["truth"]
    call = only_inbound(run(streams(scenario)[kind]))
    assert call["caller"] == t["caller"]
    assert call["dialed"] == t["dialed"]
    assert call["department"] == "민원여권과"
    check_answered(call, t["answered_by"], t["ring_ms_at_phone"] / 1000, t["hangup_first"])
    if "rings_kr_cadence" in t:
        assert call["rings"] == t["rings_kr_cadence"]
    assert call["transfers"] == []


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scenario", ["h1_ring_group", "h2_queue_ringall"])
def test_ring_group_and_queue(scenario: str, kind: str) -> None:
    t = truth(scenario)["truth"]
    call = only_inbound(run(streams(scenario)[kind]))
    # The clock starts at the first phone ringing, which was a few ms before 202's 180.
    first_ring = min(
        d.ringing_at for d in dialogs(scenario) if d.phone.startswith("uas-") and d.ringing_at
    )
    answer = sip_time(scenario, "uas-202", "SIP/2.0 200")
    assert answer - first_ring == pytest.approx(t["ring_ms_at_202"] / 1000, abs=RING_TOLERANCE)
    check_answered(call, "202", answer - first_ring, "caller")
    assert sorted(call["rang"]) == ["201", "202"]
    assert call["missed"] is False  # the losing leg (201) is not a missed call


@pytest.mark.parametrize("kind", KINDS)
def test_group_pickup(kind: str) -> None:
    scenario = "i1_group_pickup"
    call = only_inbound(run(streams(scenario)[kind]))
    # The customer's wait: from 201's 180 to the customer's 200 OK (203 picked up).
    ring = sip_time(scenario, "uac-pstn", "SIP/2.0 200", "recv") - sip_time(
        scenario, "uas-201", "SIP/2.0 180"
    )
    check_answered(call, "203", ring, "caller")
    assert call["picked_up"] is True
    assert call["rang"] == ["201"]
    assert call["department"] == "총무과"


@pytest.mark.parametrize("kind", KINDS)
def test_blind_transfer(kind: str) -> None:
    scenario = "e_blind_transfer"
    t = truth(scenario)["truth"]
    call = only_inbound(run(streams(scenario)[kind]))
    check_answered(call, "201", t["ring_ms_at_201"] / 1000, "caller")
    [transfer] = call["transfers"]
    refer = sip_time(scenario, "uas-201", "REFER")
    answered_by_202 = sip_time(scenario, "uas-202", "SIP/2.0 200")
    assert transfer["kind"] == "blind"
    assert transfer["completed"] is True
    assert (transfer["from"], transfer["to"]) == ("201", "202")
    assert transfer["other_department"] is False
    assert transfer["wait_seconds"] == pytest.approx(
        answered_by_202 - refer, abs=TRANSFER_TOLERANCE
    )
    assert transfer["target_ring_seconds"] == pytest.approx(
        t["ring_ms_at_202"] / 1000, abs=TRANSFER_TOLERANCE
    )
    assert transfer["p4_met"] is True


@pytest.mark.parametrize("kind", KINDS)
def test_attended_transfer(kind: str) -> None:
    scenario = "f1_attended_transfer_2s"
    t = truth(scenario)
    call = only_inbound(run(streams(scenario)[kind]))
    check_answered(call, "201", t["truth"]["ring_ms_at_201"] / 1000, "caller")
    [transfer] = call["transfers"]
    # Started when the transfer feature was invoked (the Atxfer action = *2), connected
    # when 201 hung up to hand the customer over.
    started = t["ami_actions"][0]["t"]
    connected = sip_time(scenario, "uas-201", "BYE")
    assert transfer["kind"] == "attended"
    assert transfer["completed"] is True
    assert (transfer["from"], transfer["to"]) == ("201", "202")
    assert transfer["wait_seconds"] == pytest.approx(connected - started, abs=TRANSFER_TOLERANCE)
    assert transfer["target_ring_seconds"] == pytest.approx(
        t["truth"]["ring_ms_at_202"] / 1000, abs=TRANSFER_TOLERANCE
    )
    assert transfer["p4_met"] is (not t["truth"]["breach"])


@pytest.mark.parametrize("kind", KINDS)
def test_caller_abandons_while_ringing(kind: str) -> None:
    scenario = "m_caller_abandons_while_ringing"
    t = truth(scenario)["truth"]
    call = only_inbound(run(streams(scenario)[kind]))
    assert call["missed"] is True
    assert call["missed_reason"] == "caller_abandoned"
    assert call["answered_by"] is None
    assert call["ring_seconds"] == pytest.approx(
        t["caller_cancel_ms_after_180"] / 1000, abs=RING_TOLERANCE
    )
    assert call["rings"] == t["rings_kr_cadence"]
    assert call["p1_met"] is None
    assert call["hangup_first"] == "caller"


def outbound(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in calls if c["direction"] == "outbound"]


@pytest.mark.parametrize("kind", KINDS)
def test_missed_then_callback(kind: str) -> None:
    scenario = "d_missed_then_callback"
    t = truth(scenario)["truth"]
    calls = run(streams(scenario)[kind])
    missed = only_inbound(calls)
    assert missed["missed"] is True
    assert missed["missed_reason"] == "no_answer"
    assert missed["ring_seconds"] == pytest.approx(t["first_call"]["dial_timeout_s"], abs=0.1)
    [callback] = outbound(calls)
    assert callback["staff"] == "201"
    assert callback["dialed"] == t["callback"]["to_number"]
    assert callback["answered_at"] is not None
    assert callback["ring_seconds"] == pytest.approx(
        t["callback"]["ring_ms_at_customer"] / 1000, abs=RING_TOLERANCE
    )
    assert callback["hangup_first"] == "staff"
    assert callback["p1_met"] is None  # outbound calls are not judged on P1
    assert callback["judged"] is False


@pytest.mark.parametrize("kind", KINDS)
def test_missed_then_two_callback_attempts(kind: str) -> None:
    scenario = "n_missed_then_two_callback_attempts"
    t = truth(scenario)["truth"]
    calls = run(streams(scenario)[kind])
    assert only_inbound(calls)["missed_reason"] == "no_answer"
    first, second = outbound(calls)
    assert first["answered_at"] is None
    assert first["missed"] is False  # an unanswered callback is not a missed customer call
    assert second["answered_at"] is not None
    assert second["ring_seconds"] == pytest.approx(
        t["callback_2"]["ring_ms_at_customer"] / 1000, abs=RING_TOLERANCE
    )
    assert {first["dialed"], second["dialed"]} == {t["callback_1"]["to_number"]}


@pytest.mark.parametrize("kind", KINDS)
def test_internal_call(kind: str) -> None:
    scenario = "p_internal_call"
    t = truth(scenario)["truth"]
    [call] = run(streams(scenario)[kind])
    assert call["direction"] == "internal"
    assert call["caller"] == t["caller"]
    assert call["judged"] is False  # reported, not counted against the charter
    check_answered(call, "201", t["ring_ms_at_201"] / 1000, "caller")
    assert call["rings"] == t["rings_kr_cadence"]


@pytest.mark.parametrize("kind", KINDS)
def test_reconnect_midcall(kind: str) -> None:
    scenario = "s_ami_reconnect_midcall"
    t = truth(scenario)["truth"]
    call = only_inbound(run(streams(scenario)[kind]))
    # Both channels were still up at the resync, so nothing that matters was missed.
    check_answered(call, "201", t["ring_ms_at_phone"] / 1000, t["hangup_first"])


def test_reconnect_part1_alone_is_incomplete() -> None:
    """A stream that stops mid-call never counts the call as met or breached."""
    scenario = "s_ami_reconnect_midcall"
    call = only_inbound(run(streams(scenario)["ami"][:1]))
    assert call["incomplete"] is True
    assert call["judged"] is False


@pytest.mark.parametrize("kind", KINDS)
def test_burst_every_call_against_its_sip_dialog(kind: str) -> None:
    scenario = "j_burst_50"
    calls = run(streams(scenario)[kind])
    assert len(calls) == 50
    staff_dialogs = [d for d in dialogs(scenario) if d.phone.startswith("uas-") and d.ringing_at]
    assert len(staff_dialogs) == 50
    answered = missed = 0
    for call in calls:
        assert call["direction"] == "inbound"
        assert call["incomplete"] is False
        [ext] = call["rang"]
        phone = f"uas-{ext}-"
        # The SIP dialog of this call: the phone's 180 closest to the monitor's ring start.
        start = call_ring_start(call)
        dialog = min(
            (d for d in staff_dialogs if d.phone.startswith(phone)),
            key=lambda d: abs((d.ringing_at or 0) - start),
        )
        assert dialog.ringing_at == pytest.approx(start, abs=RING_TOLERANCE)
        if dialog.answered_at is None:
            missed += 1
            assert ext == "204"
            assert call["missed"] is True
            assert call["missed_reason"] == "no_answer"
            assert call["answered_by"] is None
        else:
            answered += 1
            ring = dialog.answered_at - dialog.ringing_at
            check_answered(call, ext, ring, "caller")
        staff_dialogs.remove(dialog)
    assert (answered, missed) == (32, 18)


def call_ring_start(call: dict[str, Any]) -> float:
    started = datetime.fromisoformat(call["answered_at"] or call["ended_at"]).timestamp()
    return started - call["ring_seconds"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_ami_and_full_streams_agree(scenario: str) -> None:
    """The read=all stream adds events, never changes a conclusion."""
    ami, full = (run(streams(scenario)[k]) for k in KINDS)

    def key(c: dict[str, Any]) -> tuple[Any, ...]:
        return (
            c["linkedid"],
            c["answered_by"],
            c["rings"],
            c["missed"],
            c["hangup_first"],
            [(t["kind"], t["to"], t["completed"]) for t in c["transfers"]],
        )

    assert sorted(map(key, ami)) == sorted(map(key, full))
