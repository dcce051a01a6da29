"""Call shapes of a real office (issue 15), as event tables built from recorded events: the
channels and headers of the shipped recordings, with the steps Asterisk takes for each shape
(read from its source where the documentation is silent)."""

from __future__ import annotations

from call_monitor.ami.framing import AmiMessage
from call_monitor.charter.rules import judge
from call_monitor.config import CharterSettings, default_directory
from call_monitor.directory import Directory
from tests.test_correlator_variants import by_channel, correlate, recorded

DIRECTORY = Directory(default_directory())


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
