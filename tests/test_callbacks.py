"""Callbacks owed (P6, V4): the recordings through replay() and the tracker, then hand-built
records for the rules the recordings do not show."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from call_monitor.calls.model import CallRecord, Leg
from call_monitor.charter.callbacks import CallbackTracker
from call_monitor.charter.judged import JudgedCall
from call_monitor.charter.obligations import (
    CHANGE_KINDS,
    OPEN_STATES,
    TRANSITIONS,
    ChangeKind,
    IllegalTransition,
    Obligation,
    ObligationChange,
    ObligationHistory,
    ObligationState,
    allows,
    callback_report,
    count_kinds,
    next_state,
    normalise_number,
)
from call_monitor.charter.working_hours import NaiveDatetimeError, WorkingHours
from call_monitor.config import CallbackSettings, Settings
from call_monitor.daemon.pipeline import replay
from call_monitor.directory import Directory
from call_monitor.timefmt import SEOUL
from tests.recordings import streams

CUSTOMER = "01012345678"
DEPARTMENT = "민원여권과"


def seoul(y: int, m: int, d: int, hh: int = 0, mm: int = 0, *, ss: float = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SEOUL) + timedelta(seconds=ss)


def epoch(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> float:
    return seoul(y, m, d, hh, mm).timestamp()


def tracker(**callbacks: object) -> CallbackTracker:
    settings = Settings(callbacks=CallbackSettings.model_validate(callbacks))
    return CallbackTracker(
        settings.callbacks, WorkingHours(settings.working_hours), Directory(settings.directory)
    )


# Monday 2026-11-30, an ordinary working day.
MON_10 = epoch(2026, 11, 30, 10)


def missed(
    linkedid: str,
    at: float = MON_10,
    *,
    caller: str = CUSTOMER,
    dialed: str = "201",
    rang: list[str] | None = None,
    reason: str = "no_answer",
    ring: float = 20.0,
    direction: str = "inbound",
) -> CallRecord:
    return CallRecord(
        linkedid=linkedid,
        started_at=at,
        direction=direction,  # type: ignore[arg-type]
        caller=caller,
        dialed=dialed,
        staff=caller if direction == "internal" else None,
        ring_started_at=at,
        legs=staff_legs([dialed] if rang is None else rang, at),
        ended_at=at + ring,
        missed=True,
        missed_reason=reason,  # type: ignore[arg-type]
    )


def staff_legs(extensions: list[str], at: float) -> list[Leg]:
    """Staff phones that rang for the caller, a tenth of a second apart."""
    return [
        Leg(party="staff", extension=ext, rang_at=at + i / 10) for i, ext in enumerate(extensions)
    ]


def outbound(
    linkedid: str, at: float, *, staff: str = "201", to: str = CUSTOMER, answered: bool = True
) -> CallRecord:
    return CallRecord(
        linkedid=linkedid,
        started_at=at,
        direction="outbound",
        caller=staff,
        dialed=to,
        staff=staff,
        ring_started_at=at,
        answered_at=at + 3 if answered else None,
        ended_at=at + 30,
    )


def answered_inbound(
    linkedid: str, at: float, *, caller: str = CUSTOMER, dialed: str = "201", by: str = "201"
) -> CallRecord:
    return CallRecord(
        linkedid=linkedid,
        started_at=at,
        direction="inbound",
        caller=caller,
        dialed=dialed,
        ring_started_at=at,
        answered_at=at + 2,
        answered_by=by,
        legs=staff_legs([dialed], at),
        ended_at=at + 60,
    )


def only(changes: list[ObligationChange]) -> ObligationChange:
    assert len(changes) == 1, changes
    return changes[0]


def history_of(changes: list[ObligationChange], obligation_id: str) -> ObligationHistory:
    """An obligation's history as the store keeps it: its changes, in order."""
    mine = [c for c in changes if c.obligation.id == obligation_id]
    # Each change's snapshot counts the history up to it, the change included.
    for i, change in enumerate(mine):
        assert change.position == i
        assert change.obligation.kind_counts == count_kinds(c.kind for c in mine[: i + 1])
    return ObligationHistory(tuple(c.change for c in mine))


# -- the recordings ------------------------------------------------------------------------


def replay_through_tracker(
    scenario: str,
) -> tuple[CallbackTracker, dict[str, Obligation], list[ObligationChange]]:
    settings = Settings()
    callbacks = CallbackTracker(
        settings.callbacks, WorkingHours(settings.working_hours), Directory(settings.directory)
    )
    latest: dict[str, Obligation] = {}
    changes: list[ObligationChange] = []
    for item in replay(streams(scenario)["ami"], settings):
        assert isinstance(item, JudgedCall)
        for change in callbacks.on_call(item.record):
            latest[change.obligation.id] = change.obligation
            changes.append(change)
    return callbacks, latest, changes


@pytest.mark.parametrize(
    ("scenario", "owner", "state", "attempts", "still_open"),
    [
        ("d_missed_then_callback", "201", "fulfilled_on_time", 0, False),
        ("n_missed_then_two_callback_attempts", "201", "fulfilled_on_time", 1, False),
        ("m_caller_abandons_while_ringing", "202", "open", 0, True),
    ],
)
def test_recordings(scenario: str, owner: str, state: str, attempts: int, still_open: bool) -> None:
    callbacks, latest, _ = replay_through_tracker(scenario)
    (obligation,) = latest.values()
    report = callback_report(obligation)
    # The lab clock read Saturday 2026-11-28 ~15:30: one working hour from Monday 09:00.
    assert report["due_at"] == "2026-11-30T10:00:00.000+09:00"
    assert report["created_at"].startswith("2026-11-28T15:")
    assert report["created_at"].endswith("+09:00")
    assert report["kind"] == "callback"
    assert report["owner"] == owner
    assert report["owner_department"] == DEPARTMENT
    assert report["number"] == CUSTOMER
    assert report["state"] == state
    assert report["attempts"] == attempts
    assert (report["closed_at"] is None) == still_open
    assert obligation.owner_kind == "staff"
    assert obligation.source == "missed_call"
    assert [o.id for o in callbacks.open_obligations()] == ([obligation.id] if still_open else [])


def test_recording_n_history() -> None:
    _, latest, changes = replay_through_tracker("n_missed_then_two_callback_attempts")
    (obligation,) = latest.values()
    history = history_of(changes, obligation.id)
    assert [c.kind for c in history.changes] == ["created", "attempt", "fulfilled_on_time"]
    assert obligation.history_length == 3
    assert (obligation.attempt_count, obligation.missed_calls) == (1, 1)
    (attempt,) = history.attempts
    assert attempt.by == "201"
    assert obligation.created_at < attempt.at < obligation.closed_at  # type: ignore[operator]
    assert obligation.closed_by == "201"
    assert obligation.closing_call is not None
    assert obligation.id == f"call-{history.calls[0]}"


def test_recording_m_is_caller_abandoned() -> None:
    _, latest, changes = replay_through_tracker("m_caller_abandons_while_ringing")
    (obligation,) = latest.values()
    assert history_of(changes, obligation.id).changes[0].cause == "missed_call:caller_abandoned"


def test_answered_recordings_owe_nothing() -> None:
    for scenario in ("a_answer_1ring", "h1_ring_group", "i1_group_pickup", "p_internal_call"):
        _, latest, _ = replay_through_tracker(scenario)
        assert latest == {}, scenario


# -- numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("+82 10-1234-5678", "01012345678"),
        ("010-1234-5678", "01012345678"),
        ("01012345678", "01012345678"),
        ("(010) 1234.5678", "01012345678"),
        ("+82 (0)10 1234 5678", "01012345678"),
        ("0082-10-1234-5678", "01012345678"),
        ("821012345678", "01012345678"),
        ("+82 2-450-1435", "024501435"),
        ("02-450-1435", "024501435"),
        ("024501435", "024501435"),
        ("1588-1234", "15881234"),
        ("201", "201"),
        ("+1 (555) 010-9999", "15550109999"),
        ("sip:abc", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_normalise_number(raw: str | None, key: str) -> None:
    assert normalise_number(raw) == key


def test_differently_written_numbers_join_one_obligation() -> None:
    callbacks = tracker()
    first = only(callbacks.on_call(missed("c1", caller="+82 10-1234-5678")))
    second = only(callbacks.on_call(missed("c2", MON_10 + 600, caller="010-1234-5678")))
    assert first.kind == "created"
    assert second.kind == "joined"
    obligation = second.obligation
    assert obligation.id == first.obligation.id == "call-c1"
    assert obligation.missed_calls == 2
    assert history_of([first, second], obligation.id).calls == ("c1", "c2")
    assert obligation.due_at == first.obligation.due_at  # the first due time is kept
    assert obligation.due_at == seoul(2026, 11, 30, 11, 0, ss=20)
    closed = only(callbacks.on_call(outbound("o1", MON_10 + 900, to="01012345678")))
    assert closed.kind == "fulfilled_on_time"
    assert callbacks.open_obligations() == []


def test_other_owner_is_another_obligation() -> None:
    callbacks = tracker()
    only(callbacks.on_call(missed("c1", dialed="201")))
    second = only(callbacks.on_call(missed("c2", MON_10 + 60, dialed="202")))
    assert second.kind == "created"
    assert len(callbacks.open_obligations()) == 2


# -- ring groups and who may fulfil ----------------------------------------------------------


def test_ring_group_miss_is_owned_by_the_department() -> None:
    callbacks = tracker()
    created = only(callbacks.on_call(missed("g1", dialed="600", rang=["201", "202"])))
    assert created.obligation.owner == DEPARTMENT
    assert created.obligation.owner_kind == "department"
    assert created.obligation.owner_department == DEPARTMENT
    # Someone of another department calling the customer does not discharge it.
    assert callbacks.on_call(outbound("o1", MON_10 + 300, staff="203")) == []
    done = only(callbacks.on_call(outbound("o2", MON_10 + 600, staff="202")))
    assert done.kind == "fulfilled_on_time"
    assert done.obligation.closed_by == "202"
    assert done.obligation.closed_at == seoul(2026, 11, 30, 10, 10, ss=3)


def test_several_phones_rang_without_a_known_group() -> None:
    callbacks = tracker()
    created = only(callbacks.on_call(missed("g2", dialed="800", rang=["202", "201"])))
    assert created.obligation.owner == DEPARTMENT


def test_a_colleagues_callback_fulfils_a_staff_members_obligation() -> None:
    """201 is away; 202, of the same department, calls the customer back: the customer was
    called back (issue 15). The obligation says who did."""
    callbacks = tracker()
    only(callbacks.on_call(missed("c1", dialed="201")))
    attempt = only(callbacks.on_call(outbound("o1", MON_10 + 60, staff="202", answered=False)))
    assert (attempt.kind, attempt.obligation.state) == ("attempt", "open")
    done = only(callbacks.on_call(outbound("o2", MON_10 + 300, staff="202")))
    assert (done.kind, done.obligation.owner, done.obligation.closed_by) == (
        "fulfilled_on_time",
        "201",
        "202",
    )
    assert callbacks.open_obligations() == []


def test_another_departments_callback_does_not_fulfil_it() -> None:
    callbacks = tracker()
    only(callbacks.on_call(missed("c1", dialed="201")))
    assert callbacks.on_call(outbound("o1", MON_10 + 300, staff="203")) == []  # 총무과
    [still] = callbacks.open_obligations()
    assert (still.owner, still.state, still.closed_by) == ("201", "open", None)


def test_a_departments_obligation_is_not_fulfilled_from_another_department() -> None:
    callbacks = tracker()
    only(callbacks.on_call(missed("g1", dialed="600", rang=["201", "202"])))
    assert callbacks.on_call(outbound("o1", MON_10 + 300, staff="203")) == []
    done = only(callbacks.on_call(outbound("o2", MON_10 + 400, staff="202")))
    assert (done.kind, done.obligation.closed_by) == ("fulfilled_on_time", "202")


def test_unattributable_miss_creates_nothing() -> None:
    assert tracker().on_call(missed("c1", dialed="999", rang=[])) == []


def test_callback_placed_before_the_miss_does_not_count() -> None:
    callbacks = tracker()
    early = outbound("o1", MON_10 - 60)
    only(callbacks.on_call(missed("c1")))
    assert callbacks.on_call(early) == []


def test_late_callback_is_fulfilled_late() -> None:
    callbacks = tracker()
    only(callbacks.on_call(missed("c1")))
    late = only(callbacks.on_call(outbound("o1", epoch(2026, 11, 30, 11, 30))))
    assert late.kind == "fulfilled_late"
    assert late.obligation.state == "fulfilled_late"


# -- other ways an obligation ends -----------------------------------------------------------


def test_resolved_by_inbound_in_the_owners_department() -> None:
    callbacks = tracker()
    only(callbacks.on_call(missed("c1", dialed="201")))
    # Answered in another department: the owner still owes the call.
    assert callbacks.on_call(answered_inbound("i1", MON_10 + 300, dialed="203", by="203")) == []
    resolved = only(
        callbacks.on_call(answered_inbound("i2", MON_10 + 600, caller="+82 10 1234 5678", by="202"))
    )
    assert resolved.kind == "resolved_by_inbound"
    assert resolved.obligation.state == "resolved_by_inbound"
    assert resolved.obligation.closed_by == "202"
    assert callbacks.open_obligations() == []


def test_cancel() -> None:
    callbacks = tracker()
    created = only(callbacks.on_call(missed("c1")))
    at = seoul(2026, 11, 30, 10, 5)
    cancelled = callbacks.cancel(created.obligation.id, "wrong number", "203", at)
    assert cancelled.obligation.state == "cancelled"
    assert cancelled.obligation.closed_at == at
    assert cancelled.obligation.closed_by == "203"
    assert cancelled.change.cause == "cancelled: wrong number"
    assert callbacks.get(created.obligation.id) is None
    with pytest.raises(KeyError):
        callbacks.cancel(created.obligation.id, "again", "203", at)
    # The number and owner are free again: a new miss opens a new obligation.
    assert only(callbacks.on_call(missed("c2", MON_10 + 900))).kind == "created"


# -- reminders, deadlines, restarts -----------------------------------------------------------


def test_reminder_and_overdue_each_once() -> None:
    callbacks = tracker()
    created = only(callbacks.on_call(missed("c1", ring=0)))
    obligation = created.obligation
    assert obligation.due_at == seoul(2026, 11, 30, 11)
    assert obligation.reminder_at == seoul(2026, 11, 30, 10, 45)
    assert callbacks.next_event_at() == obligation.reminder_at
    assert callbacks.due_events(seoul(2026, 11, 30, 10, 44)) == []
    reminder = only(callbacks.due_events(seoul(2026, 11, 30, 10, 45)))
    assert (reminder.kind, reminder.obligation.state) == ("reminder", "reminded")
    assert callbacks.due_events(seoul(2026, 11, 30, 10, 50)) == []
    assert callbacks.next_event_at() == obligation.due_at
    overdue = only(callbacks.due_events(seoul(2026, 11, 30, 11, 0, ss=1)))
    assert (overdue.kind, overdue.at) == ("overdue", obligation.due_at)
    assert callbacks.due_events(seoul(2026, 12, 1, 9)) == []
    assert callbacks.next_event_at() is None
    done = only(callbacks.on_call(outbound("o1", epoch(2026, 11, 30, 14))))
    assert done.kind == "fulfilled_late"
    history = history_of([created, reminder, overdue, done], obligation.id)
    assert [c.kind for c in history.changes] == [
        "created",
        "reminder",
        "overdue",
        "fulfilled_late",
    ]
    assert done.obligation.history_length == 4


def test_reminder_counts_working_time() -> None:
    # Missed Friday 17:40: due Monday 09:40, reminder 15 working minutes before (09:25).
    callbacks = tracker()
    created = only(callbacks.on_call(missed("c1", epoch(2026, 11, 27, 17, 40), ring=0)))
    assert created.obligation.due_at == seoul(2026, 11, 30, 9, 40)
    assert created.obligation.reminder_at == seoul(2026, 11, 30, 9, 25)
    assert callbacks.due_events(seoul(2026, 11, 29, 12)) == []  # Sunday


def test_restore_then_overdue_once() -> None:
    first = tracker()
    open_one = only(first.on_call(missed("c1", ring=0))).obligation
    only(first.on_call(missed("c2", ring=0, caller="01099998888")))
    closed_one = only(first.on_call(outbound("o1", MON_10 + 60, to="01099998888"))).obligation
    assert closed_one.state == "fulfilled_on_time"

    # After a restart past the deadline: no stale reminder, one overdue.
    second = tracker()
    assert second.restore([open_one, closed_one]) == 1
    assert [o.id for o in second.open_obligations()] == [open_one.id]
    overdue = only(second.due_events(seoul(2026, 11, 30, 15)))
    assert overdue.kind == "overdue"
    assert second.due_events(seoul(2026, 11, 30, 16)) == []
    # A restored obligation still joins new misses and is fulfilled by a callback.
    assert only(second.on_call(missed("c3", MON_10 + 7200))).kind == "joined"
    assert only(second.on_call(outbound("o2", MON_10 + 7300))).kind == "fulfilled_late"


def test_restore_keeps_reminded_state() -> None:
    first = tracker()
    only(first.on_call(missed("c1", ring=0)))
    reminded = only(first.due_events(seoul(2026, 11, 30, 10, 50))).obligation
    second = tracker()
    second.restore([reminded])
    assert second.due_events(seoul(2026, 11, 30, 10, 55)) == []
    assert only(second.due_events(seoul(2026, 11, 30, 11))).kind == "overdue"


def test_due_events_needs_an_aware_now() -> None:
    with pytest.raises(NaiveDatetimeError):
        tracker().due_events(datetime(2026, 11, 30, 10))


# -- what creates nothing ---------------------------------------------------------------------


def test_misdial_below_min_ring_creates_nothing() -> None:
    callbacks = tracker(min_ring_seconds_for_obligation=3.0)
    assert callbacks.on_call(missed("c1", reason="caller_abandoned", ring=1.0)) == []
    assert only(callbacks.on_call(missed("c2", reason="caller_abandoned", ring=4.0))).kind == (
        "created"
    )
    # A busy line never rings and is owed a callback all the same.
    busy = replace(missed("c3", caller="01055556666", reason="busy"), ring_started_at=None)
    assert only(callbacks.on_call(busy)).kind == "created"


def test_internal_calls_create_nothing_by_default() -> None:
    internal = missed("c1", caller="202", dialed="201", direction="internal")
    assert tracker().on_call(internal) == []
    counted = only(tracker(count_internal_calls=True).on_call(internal))
    assert counted.obligation.number == "202"
    assert counted.obligation.owner == "201"


@pytest.mark.parametrize("reason", ["unavailable", "failed"])
def test_faults_create_nothing(reason: str) -> None:
    assert tracker().on_call(missed("c1", reason=reason)) == []


def test_incomplete_and_anonymous_calls_create_nothing() -> None:
    callbacks = tracker()
    assert callbacks.on_call(replace(missed("c1"), incomplete=True)) == []
    assert callbacks.on_call(missed("c2", caller="")) == []
    assert callbacks.on_call(missed("c3", caller="anonymous")) == []


def test_picked_up_by_a_colleague_is_not_missed() -> None:
    pickup = replace(answered_inbound("p1", MON_10, dialed="201", by="203"), picked_up=True)
    assert tracker().on_call(pickup) == []


# -- memos ------------------------------------------------------------------------------------


def test_memo_creates_an_obligation_that_a_missed_call_joins() -> None:
    callbacks = tracker()
    at = seoul(2026, 11, 30, 17, 30)
    created = callbacks.memo(
        obligation_id="memo-1",
        at=at,
        number="010-2222-3333",
        owner="201",
        taken_by="203",
        caller_name="홍길동",
        matter="여권 재발급 서류",
    )
    obligation = created.obligation
    assert (created.kind, obligation.source, obligation.owner_kind) == ("created", "memo", "staff")
    assert obligation.due_at == seoul(2026, 12, 1, 9, 30)
    assert (obligation.taken_by, obligation.caller_name) == ("203", "홍길동")
    joined = only(
        callbacks.on_call(missed("c1", epoch(2026, 11, 30, 17, 40), caller="01022223333"))
    )
    assert joined.kind == "joined"
    assert joined.obligation.id == "memo-1"
    assert joined.obligation.due_at == obligation.due_at


def test_memo_joins_an_open_obligation_and_fills_in_the_details() -> None:
    callbacks = tracker()
    created = only(callbacks.on_call(missed("c1", dialed="600", rang=["201", "202"])))
    change = callbacks.memo(
        obligation_id="memo-2",
        at=seoul(2026, 11, 30, 10, 5),
        number=CUSTOMER,
        owner=DEPARTMENT,
        taken_by="202",
        matter="전입신고",
    )
    assert change.kind == "memo"
    assert change.obligation.id == created.obligation.id
    assert change.obligation.matter == "전입신고"


def test_memo_rejects_unknown_owner_and_number() -> None:
    callbacks = tracker()
    at = seoul(2026, 11, 30, 10)
    with pytest.raises(ValueError, match="unknown owner"):
        callbacks.memo(obligation_id="m", at=at, number=CUSTOMER, owner="999", taken_by=None)
    with pytest.raises(ValueError, match="no callable number"):
        callbacks.memo(obligation_id="m", at=at, number="", owner="201", taken_by=None)


# -- scale: constant-size snapshots, indexes that agree with a scan ---------------------------


def deep_size(value: object) -> int:
    """Bytes of ``value`` and of everything it holds (a snapshot's slots, tuples, strings)."""
    size = sys.getsizeof(value)
    if isinstance(value, tuple):
        return size + sum(deep_size(item) for item in value)
    if hasattr(value, "__slots__") and not isinstance(value, (str, int, datetime)):
        return size + sum(deep_size(getattr(value, name)) for name in value.__slots__)
    return size


def test_ten_thousand_joins_keep_a_constant_size_snapshot() -> None:
    callbacks = tracker()
    created = only(callbacks.on_call(missed("c0")))
    sizes = {}
    for n in range(1, 10_001):
        at = MON_10 + 60 + n * 0.01  # after the first call ended
        change = only(callbacks.on_call(missed(f"c{n}", at)))
        assert change.kind == "joined"
        if n % 50 == 0:  # an unanswered callback now and then, and a memo
            assert only(callbacks.on_call(outbound(f"o{n}", at, answered=False))).kind == "attempt"
            memo = callbacks.memo(
                obligation_id=f"m{n}", at=_seoul(at), number=CUSTOMER, owner="201", taken_by="202"
            )
            assert memo.kind == "memo"
        if n in (100, 10_000):
            sizes[n] = deep_size(callbacks.get(created.obligation.id))
    obligation = callbacks.get(created.obligation.id)
    assert obligation is not None
    assert sizes[100] == sizes[10_000]
    # The same as the first snapshot's, but for the memo's taker it now names.
    assert sizes[100] == deep_size(replace(created.obligation, taken_by="202"))
    assert obligation.missed_calls == 10_001
    assert (obligation.count("joined"), obligation.attempt_count) == (10_000, 200)
    assert obligation.count("memo") == 200
    assert obligation.history_length == 1 + 10_000 + 200 + 200
    assert obligation.due_at == created.obligation.due_at
    # One obligation, however often it was joined: one of everything in the indexes too.
    assert callbacks.open_obligations() == [obligation]
    assert callbacks.open_for_staff("201") == [obligation]
    assert callbacks.open_for_number("+82 10-1234-5678") == [obligation]
    assert len(callbacks._timeline) == 1
    assert callbacks.next_event_at() == obligation.reminder_at


def _seoul(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, SEOUL)


TrackerT = TypeVar("TrackerT", bound=CallbackTracker)


class ScanningTracker(CallbackTracker):
    """The same rules with every lookup a scan of all open obligations, as the tracker did
    before it had indexes: the reference the indexed one must agree with."""

    def _for_number(self, number: str) -> list[Obligation]:
        return [o for o in self.open_obligations() if o.number == number]

    def _due(self, now: datetime) -> list[Obligation]:
        return [
            o
            for o in self.open_obligations()
            if (o.state in ("open", "reminded") and now >= o.due_at)
            or (o.state == "open" and now >= o.reminder_at)
        ]


NUMBERS = ["010-1234-5678", "+82 10 1234 5678", "01099998888", "02-1234-5678"]
MISSED_TO = [("201", None), ("202", None), ("203", None), ("600", ["201", "202"])]
MISSED_TO += [("800", ["202", "201"]), ("800", ["203"]), ("999", [])]
MEMO_OWNERS = ["201", "202", "203", DEPARTMENT, "총무과"]
STAFF = ["201", "202", "203", "204"]

operations = st.one_of(
    st.tuples(
        st.just("missed"),
        st.sampled_from(NUMBERS),
        st.sampled_from(MISSED_TO),
        st.sampled_from(["no_answer", "caller_abandoned", "busy", "failed"]),
    ),
    st.tuples(st.just("callback"), st.sampled_from(NUMBERS), st.sampled_from(STAFF), st.booleans()),
    st.tuples(st.just("inbound"), st.sampled_from(NUMBERS), st.sampled_from(STAFF)),
    st.tuples(st.just("memo"), st.sampled_from(NUMBERS), st.sampled_from(MEMO_OWNERS)),
    st.tuples(st.just("cancel"), st.integers(0, 20)),
    st.tuples(st.just("tick")),
    st.tuples(st.just("restart")),
    # A store holding two open obligations of one key (restored as they are).
    st.tuples(st.just("duplicate"), st.integers(0, 20)),
)

# Inputs, each with the seconds since the one before; reminders with or without a lead time.
input_steps = st.lists(st.tuples(operations, st.integers(0, 5400)), max_size=60)
reminders_before = st.sampled_from([0.0, 900.0])


def _apply(
    callbacks: CallbackTracker, op: tuple[Any, ...], n: int, at: float
) -> list[ObligationChange]:
    kind = op[0]
    if kind == "missed":
        _, number, (dialed, rang), reason = op
        return callbacks.on_call(missed(f"m{n}", at, caller=number, dialed=dialed, rang=rang,
                                        reason=reason))  # fmt: skip
    if kind == "callback":
        _, number, staff, answered = op
        return callbacks.on_call(outbound(f"o{n}", at, staff=staff, to=number, answered=answered))
    if kind == "inbound":
        _, number, by = op
        return callbacks.on_call(answered_inbound(f"i{n}", at, caller=number, dialed=by, by=by))
    if kind == "memo":
        _, number, owner = op
        change = callbacks.memo(
            obligation_id=f"memo-{n}", at=_seoul(at), number=number, owner=owner, taken_by="203"
        )
        return [change]
    if kind == "cancel":
        candidates = callbacks.open_obligations()
        if not candidates:
            return []
        chosen = candidates[op[1] % len(candidates)]
        return [callbacks.cancel(chosen.id, "test", "203", _seoul(at))]
    if kind == "tick":
        return callbacks.due_events(_seoul(at))
    if kind == "duplicate":
        candidates = callbacks.open_obligations()
        if candidates:
            chosen = candidates[op[1] % len(candidates)]
            assert callbacks.restore([replace(chosen, id=f"{chosen.id}-{n}")]) == 1
        return []
    raise AssertionError(op)


def _restarted(callbacks: TrackerT) -> TrackerT:
    again = type(callbacks)(callbacks.settings, callbacks.working_hours, callbacks.directory)
    assert again.restore(callbacks.open_obligations()) == len(callbacks.open_obligations())
    return again


def _check_queries(callbacks: CallbackTracker, now: datetime) -> None:
    """Every indexed query against a scan of all open obligations."""
    everything = callbacks.open_obligations()
    for extension in STAFF:
        mine = [o for o in everything if o.owner_kind == "staff" and o.owner == extension]
        assert callbacks.open_for_staff(extension) == mine
    for number in NUMBERS:
        key = normalise_number(number)
        assert callbacks.open_for_number(number) == [o for o in everything if o.number == key]
    times = {now, now + timedelta(minutes=20), now + timedelta(hours=3)}
    times |= {t for o in everything[:4] for t in (o.due_at, o.reminder_at)}  # the edges
    for when in sorted(times):
        counts: dict[str | None, list[int]] = {}
        for o in everything:
            tally = counts.setdefault(o.owner_department, [0, 0])
            tally[0] += 1
            tally[1] += o.state == "overdue" or o.due_at <= when
        assert {k: list(v) for k, v in callbacks.counts_by_department(when).items()} == counts
    pending = [
        o.reminder_at if o.state == "open" else o.due_at
        for o in everything
        if o.state in ("open", "reminded")
    ]
    assert callbacks.next_event_at() == min(pending, default=None)
    for o in everything:  # joins find an open obligation of their key
        found = callbacks._find(o.number, o.owner)
        assert found is not None
        assert found.key == o.key


@settings(max_examples=200, deadline=None)
@given(input_steps, reminders_before)
def test_indexes_agree_with_a_scan(
    steps: list[tuple[tuple[Any, ...], int]], reminder_before: float
) -> None:
    indexed = tracker(reminder_before_working_seconds=reminder_before)
    scanning = ScanningTracker(indexed.settings, indexed.working_hours, indexed.directory)
    at = epoch(2026, 11, 30, 8, 30)  # Monday, before opening time
    for n, (op, step) in enumerate(steps):
        at += step
        if op[0] == "restart":
            indexed, scanning = _restarted(indexed), _restarted(scanning)
            continue
        got = _apply(indexed, op, n, at)
        assert got == _apply(scanning, op, n, at), op
        assert indexed.open_obligations() == scanning.open_obligations()
        _check_queries(indexed, _seoul(at))


# -- the transition table ---------------------------------------------------------------------

STATES: tuple[ObligationState, ...] = get_args(ObligationState)
CLOSING: tuple[ChangeKind, ...] = (
    "fulfilled_on_time",
    "fulfilled_late",
    "resolved_by_inbound",
    "cancelled",
)


def legal_changes() -> dict[tuple[ObligationState | None, ChangeKind], ObligationState]:
    """The rules of the module docstring, written out apart from the table they check."""
    legal: dict[tuple[ObligationState | None, ChangeKind], ObligationState] = {
        (None, "created"): "open",
        ("open", "reminder"): "reminded",
        ("open", "overdue"): "overdue",
        ("reminded", "overdue"): "overdue",
    }
    for state in ("open", "reminded", "overdue"):
        for kind in ("joined", "memo", "attempt"):
            legal[(state, kind)] = state  # recorded; the state stays
        for kind in CLOSING:  # each closing kind closes in the state of its name
            legal[(state, kind)] = cast("ObligationState", kind)
    return legal


def test_the_table_decides_every_state_and_kind() -> None:
    assert set(TRANSITIONS) == {None, *STATES}
    legal = legal_changes()
    for state in (None, *STATES):
        for kind in CHANGE_KINDS:
            assert TRANSITIONS[state].get(kind) == legal.get((state, kind)), (state, kind)
            assert allows(state, kind) == ((state, kind) in legal)
    assert {"open", "reminded", "overdue"} == OPEN_STATES


@pytest.mark.parametrize(
    ("state", "kind"),
    [
        (state, kind)
        for state in (None, *STATES)
        for kind in CHANGE_KINDS
        if (state, kind) not in legal_changes()
    ],
)
def test_each_illegal_change_raises(state: ObligationState | None, kind: ChangeKind) -> None:
    with pytest.raises(IllegalTransition) as raised:
        next_state(state, kind)
    assert (raised.value.state, raised.value.kind) == (state, kind)


def test_an_unknown_state_takes_no_change() -> None:
    with pytest.raises(IllegalTransition):
        next_state(cast("ObligationState", "lost"), "joined")


@settings(max_examples=200, deadline=None)
@given(input_steps, reminders_before)
def test_random_inputs_make_only_changes_the_table_allows(
    steps: list[tuple[tuple[Any, ...], int]], reminder_before: float
) -> None:
    callbacks = tracker(reminder_before_working_seconds=reminder_before)
    legal = legal_changes()
    states: dict[str, ObligationState] = {}  # every obligation seen: its latest state
    at = epoch(2026, 11, 30, 8, 30)
    for n, (op, step) in enumerate(steps):
        at += step
        if op[0] == "restart":
            callbacks = _restarted(callbacks)
            continue
        for change in _apply(callbacks, op, n, at):
            before = states.get(change.obligation.id)
            assert (before, change.kind) in legal, (before, change.kind)
            after = legal[(before, change.kind)]
            assert change.change.state == change.obligation.state == after
            states[change.obligation.id] = after
        if op[0] == "duplicate":  # a restored copy comes without a change, as it was stored
            for obligation in callbacks.open_obligations():
                states.setdefault(obligation.id, obligation.state)
        # The tracker holds exactly the open ones, each in the state its changes left.
        held = {o.id: o.state for o in callbacks.open_obligations()}
        assert held == {i: s for i, s in states.items() if s in OPEN_STATES}


# -- a call applied twice changes nothing (issue 13, item 4) --------------------------------


def _recorded_calls(*scenarios: str) -> list[CallRecord]:
    return [
        item.record
        for scenario in scenarios
        for item in replay(streams(scenario)["ami"], Settings())
        if isinstance(item, JudgedCall)
    ]


@pytest.mark.parametrize(
    "scenarios",
    [
        ("d_missed_then_callback",),
        ("n_missed_then_two_callback_attempts",),
        ("m_caller_abandons_while_ringing", "j_burst_50"),
    ],
)
def test_a_call_applied_again_changes_nothing(scenarios: tuple[str, ...]) -> None:
    calls = _recorded_calls(*scenarios)
    once = tracker()
    first = [change for record in calls for change in once.on_call(record)]
    assert first, "these recordings owe callbacks"
    before = sorted(once.open_obligations(), key=lambda o: o.id)
    again = [change for record in calls for change in once.on_call(record)]
    assert again == []
    assert sorted(once.open_obligations(), key=lambda o: o.id) == before


def test_after_a_restart_the_calls_already_applied_are_still_refused() -> None:
    calls = _recorded_calls("d_missed_then_callback", "m_caller_abandons_while_ringing")
    first = tracker()
    changes = [change for record in calls for change in first.on_call(record)]
    restarted = tracker()
    restarted.restore(first.open_obligations())
    restarted.restore_applied(c.change.linkedid for c in changes if c.change.linkedid)
    assert [change for record in calls for change in restarted.on_call(record)] == []
    # Without the applied calls, the same stream would be counted again: the memory matters.
    forgetful = tracker()
    forgetful.restore(first.open_obligations())
    assert [change for record in calls for change in forgetful.on_call(record)] != []
