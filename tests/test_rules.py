"""The charter rules on hand-built calls: ring boundaries, P4/P5, P7, who is judged."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from call_monitor.calls.model import CallRecord, Transfer
from call_monitor.charter.rules import judge, rings_heard, unjudged
from call_monitor.config import CharterSettings, default_directory
from call_monitor.directory import Directory

CHARTER = CharterSettings()
DIRECTORY = Directory(default_directory())


@pytest.mark.parametrize(
    ("seconds", "rings"),
    [(0.0, 1), (2.99, 1), (3.0, 2), (5.99, 2), (6.0, 3), (7.5, 3), (9.0, 4)],
)
def test_korean_cadence_ring_count(seconds: float, rings: int) -> None:
    assert rings_heard(seconds, CHARTER) == rings


def test_cadence_is_configuration() -> None:
    us = CharterSettings(ring_on_seconds=2.0, ring_off_seconds=4.0)
    assert rings_heard(5.9, us) == 1
    assert rings_heard(6.0, us) == 2


def answered(ring: float, *, direction: str = "inbound", hangup: str = "caller") -> CallRecord:
    return CallRecord(
        linkedid="1.1",
        started_at=100.0,
        direction=direction,  # type: ignore[arg-type]
        caller="01012345678",
        dialed="201",
        ring_started_at=100.0,
        answered_at=100.0 + ring,
        answered_by="201",
        ended_at=200.0,
        hangup_first=hangup,  # type: ignore[arg-type]
        talked=True,
    )


def test_p1_boundary_is_six_seconds() -> None:
    met = judge(answered(5.99), CHARTER, DIRECTORY)
    late = judge(answered(6.0), CHARTER, DIRECTORY)
    assert (met.rings, met.p1_met, met.apology_expected) == (2, True, False)
    assert (late.rings, late.p1_met, late.apology_expected) == (3, False, True)
    assert {(c.clause, c.met, c.staff, c.department) for c in late.checks} == {
        ("P1", False, "201", "민원여권과"),
        ("P7", True, "201", "민원여권과"),
    }


def test_staff_hanging_up_first_breaches_p7() -> None:
    verdict = judge(answered(1.0, hangup="staff"), CHARTER, DIRECTORY)
    assert verdict.p7_met is False
    assert ("P7", False) in {(c.clause, c.met) for c in verdict.checks}


def test_internal_and_incomplete_calls_are_not_judged() -> None:
    assert judge(answered(1.0, direction="internal"), CHARTER, DIRECTORY).checks == ()
    counted = CharterSettings(count_internal_calls=True)
    assert judge(answered(1.0, direction="internal"), counted, DIRECTORY).checks != ()
    record = answered(1.0)
    record.incomplete = True
    verdict = judge(record, CHARTER, DIRECTORY)
    assert verdict.judged is False
    assert verdict.checks == ()


def transfer_call(to_ext: str, wait: float | None) -> CallRecord:
    record = answered(1.0)
    record.transfers.append(
        Transfer(
            kind="blind",
            started_at=150.0,
            from_ext="201",
            to_ext=to_ext,
            completed=wait is not None,
            connected_at=None if wait is None else 150.0 + wait,
        )
    )
    return record


def test_p4_limit_and_p5_other_department() -> None:
    same = judge(transfer_call("202", 9.9), CHARTER, DIRECTORY)
    other = judge(transfer_call("203", 10.0), CHARTER, DIRECTORY)
    assert same.transfers[0].p4_met is True
    assert same.transfers[0].other_department is False
    assert "P5" not in {c.clause for c in same.checks}
    assert other.transfers[0].p4_met is False
    assert other.transfers[0].other_department is True
    assert {(c.clause, c.met) for c in other.checks} >= {("P4", False), ("P5", False)}
    # After the transfer, the colleague (203) is the staff member on the line for P7.
    [p7] = [c for c in other.checks if c.clause == "P7"]
    assert (p7.staff, p7.department) == ("203", "총무과")


def test_a_transfer_that_never_connected_is_not_met() -> None:
    verdict = judge(transfer_call("202", None), CHARTER, DIRECTORY)
    assert verdict.transfers[0].p4_met is False
    assert verdict.transfers[0].wait_seconds is None


def test_unknown_extensions_are_not_fatal() -> None:
    record = answered(1.0)
    record.answered_by = "999"
    record.dialed = "999"
    verdict = judge(record, CHARTER, DIRECTORY)
    assert verdict.department is None
    assert DIRECTORY.staff_label("999") == "unknown"
    assert DIRECTORY.department_label(None) == "unknown"


# -- odd data: judged or not, never an exception ----------------------------------------------

_times = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))
_extensions = st.one_of(st.none(), st.sampled_from(["201", "202", "301", ""]), st.text(max_size=8))
_transfers = st.builds(
    Transfer,
    kind=st.sampled_from(["blind", "attended"]),
    started_at=st.floats(allow_nan=True, allow_infinity=True),
    from_ext=_extensions,
    to_ext=_extensions,
    completed=st.booleans(),
    target_rang_at=_times,
    target_answered_at=_times,
    connected_at=_times,
)
_records = st.builds(
    CallRecord,
    linkedid=st.text(max_size=12),
    started_at=st.floats(allow_nan=True, allow_infinity=True),
    direction=st.one_of(
        st.sampled_from(["inbound", "outbound", "internal", "unknown"]), st.text(max_size=8)
    ),
    dialed=st.text(max_size=8),
    staff=_extensions,
    ring_started_at=_times,
    answered_at=_times,
    answered_by=_extensions,
    ended_at=_times,
    hangup_first=st.one_of(st.sampled_from(["caller", "staff", "unknown"]), st.text(max_size=5)),
    incomplete=st.booleans(),
    transfers=st.lists(_transfers, max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_records, min_size=1, max_size=20))
def test_odd_records_never_make_judge_raise(records: list[CallRecord]) -> None:
    """NaN, infinite, negative or huge times, unknown directions and extensions: a batch of
    them is judged to the last one (an infinite ring time has no ring number, not a crash)."""
    verdicts = [judge(record, CHARTER, DIRECTORY) for record in records]
    for record, verdict in zip(records, verdicts, strict=True):
        assert verdict.linkedid == record.linkedid
        assert len(verdict.transfers) == len(record.transfers)
        if verdict.rings is not None:
            assert record.ring_seconds is not None
            assert math.isfinite(record.ring_seconds)


def test_an_infinite_ring_time_has_no_ring_number() -> None:
    record = answered(1.0)
    record.answered_at = math.inf
    verdict = judge(record, CHARTER, DIRECTORY)
    assert (verdict.rings, verdict.p1_met, verdict.apology_expected) == (None, None, None)
    assert "P1" not in {c.clause for c in verdict.checks}


def test_unjudged_is_a_verdict_against_no_clause() -> None:
    record = answered(7.0)
    record.transfers = [Transfer("blind", 101.0, "201", "202", True, connected_at=103.0)]
    verdict = unjudged(record, CHARTER)
    assert (verdict.linkedid, verdict.judged, verdict.checks) == ("1.1", False, ())
    assert verdict.definitions_version == CHARTER.definitions_version
    assert [t.p4_met for t in verdict.transfers] == [None]
