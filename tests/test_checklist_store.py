"""The checklist in the store, on SQLite and PostgreSQL: revisions, acknowledgements, disputes,
sampling's candidates and progress in SQL, and the service the pages call."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from call_monitor.calls.model import CallRecord, Direction
from call_monitor.charter.judged import JudgedCall
from call_monitor.charter.rules import judge
from call_monitor.checklist.files import load_form
from call_monitor.checklist.revisions import (
    ACKNOWLEDGEMENT,
    DISPUTE,
    REVISION,
    SCORED_ITEM,
    Revision,
)
from call_monitor.checklist.sampling import sampling_order
from call_monitor.checklist.scoring import ChecklistError, Given
from call_monitor.config import CharterSettings, Settings, StoreSettings, default_directory
from call_monitor.daemon.pipeline import replay
from call_monitor.demo.pbx import recording_path
from call_monitor.directory import Directory
from call_monitor.store import StoreWriter
from call_monitor.store.checklist_service import ChecklistService, NotFound, Refused
from call_monitor.store.checklists import (
    ACKNOWLEDGEMENTS,
    ANSWERS,
    DISPUTES,
    REVISIONS,
    answers_table,
    sampling_candidates,
)
from call_monitor.store.engine import create_reader
from tests.backends import Backend

DIRECTORY = Directory(default_directory())
FORM = load_form()
# 2026-03-02 10:02:03 KST; the month of March 2026 in Seoul starts 2026-02-28 15:00 UTC.
T0 = datetime(2026, 3, 2, 1, 2, 3, tzinfo=UTC)
NOW = datetime(2026, 3, 20, 6, 0, tzinfo=UTC)
ALL_YES = {
    item: Given("yes")
    for item in ("p1_greeting", "p3_repeat", "p3_explain", "p7_anything_else", "p7_closing")
}


def record(
    linkedid: str,
    *,
    started: datetime = T0,
    answered_by: str | None = "201",
    ring: float = 1.0,
    direction: Direction = "inbound",
    incomplete: bool = False,
) -> CallRecord:
    start = started.timestamp()
    return CallRecord(
        linkedid=linkedid,
        started_at=start,
        direction=direction,
        caller="01012345678",
        dialed=answered_by or "600",
        ring_started_at=start,
        answered_at=None if answered_by is None else start + ring,
        answered_by=answered_by,
        ended_at=start + 90,
        missed=answered_by is None,
        hangup_first="caller",
        talked=answered_by is not None,  # an answered call here is a conversation (P7)
        incomplete=incomplete,
    )


async def store(engine: AsyncEngine, *calls: CallRecord) -> None:
    writer = StoreWriter(engine, StoreSettings(flush_interval_seconds=3600.0))
    for call in calls:
        writer.submit(call, judge(call, CharterSettings(), DIRECTORY))
    await writer.close()


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def service(engine: AsyncEngine, **kwargs: object) -> ChecklistService:
    return ChecklistService(engine, FORM, DIRECTORY, clock=Clock(), **kwargs)  # type: ignore[arg-type]


def test_every_record_value_has_its_column() -> None:
    revision = Revision("1.1", 1, "f", "1", "kim", NOW, None, 100.0, True, "201", "d", T0)
    assert REVISIONS.gaps(REVISION.names) == []
    assert ANSWERS.gaps(SCORED_ITEM.names) == []
    assert ACKNOWLEDGEMENTS.gaps(ACKNOWLEDGEMENT.names) == []
    assert DISPUTES.gaps(DISPUTE.names) == []
    assert REVISIONS.row(REVISION.values(revision))["call_started_at"] == T0


# --------------------------------------------------------------------------- revisions


async def test_a_submission_is_stored_exactly_and_corrections_are_new_revisions(
    engine: AsyncEngine,
) -> None:
    await store(engine, record("1.1", ring=7.0))  # ring 3: apology expected, P1 missed
    told: list[tuple[int, bool]] = []
    checklist = service(engine, on_submitted=lambda r, first: told.append((r.revision, first)))
    prepared = await checklist.prepare("1.1")
    assert {a.item.id: a.prefilled for a in prepared.asked if a.item.measured} == {
        "p1_rings": "no",
        "p4_transfer_wait": None,
        "p7_caller_hangs_up": "yes",
    }
    assert prepared.history.revisions == ()

    answers = ALL_YES | {"p2_apology": Given("no", "no apology")}
    first = await checklist.submit("1.1", answers, "supervisor-kim")
    assert (first.revision, first.reason, first.score, first.passed) == (1, None, 83.33, True)
    assert (first.staff, first.department, first.call_started_at) == ("201", "민원여권과", T0)
    assert (first.form_id, first.form_version) == (FORM.id, FORM.version)

    override = ALL_YES | {"p2_apology": Given("yes"), "p1_rings": Given("yes", "PBX clock")}
    with pytest.raises(Refused, match="revision 1 exists: a correction needs a reason"):
        await checklist.submit("1.1", override, "supervisor-kim", reason="  ")
    second = await checklist.submit("1.1", override, "supervisor-lee", reason="listened again")
    assert (second.revision, second.reason, second.score) == (2, "listened again", 100.0)
    assert told == [(1, True), (2, False)]

    history = await checklist.history("1.1")
    assert history.revisions == (first, second)  # read back exactly, answers in form order
    assert [i.item_id for i in history.revisions[1].items] == list(FORM.item_ids)
    rings = history.revisions[1].items[1]
    assert (rings.answer, rings.measured, rings.overridden, rings.comment) == (
        "yes",
        True,
        True,
        "PBX clock",
    )
    assert await checklist.latest(["1.1", "nope"]) == {"1.1": second}


async def test_through_the_daemons_reader_what_is_written_is_read_back_at_once(
    backend: Backend, engine: AsyncEngine
) -> None:
    """The reads on the autocommit reader (PostgreSQL), the writes in transactions on the
    store's engine: a correction sees the revision just written, and so does the history."""
    await store(engine, record("1.1"))
    reader = create_reader(engine, connect_args=backend.connect_args)
    try:
        checklist = service(engine, reader=reader)
        first = await checklist.submit("1.1", ALL_YES, "kim")
        with pytest.raises(Refused, match="revision 1 exists"):
            await checklist.submit("1.1", ALL_YES, "lee")
        second = await checklist.submit("1.1", ALL_YES, "lee", reason="again")
        assert (await checklist.history("1.1")).revisions == (first, second)
        assert await checklist.latest(["1.1"]) == {"1.1": second}
    finally:
        if reader is not engine:
            await reader.dispose()


async def test_submissions_at_once_take_consecutive_revisions(engine: AsyncEngine) -> None:
    await store(engine, record("1.1"))
    checklist = service(engine)
    await checklist.submit("1.1", ALL_YES, "kim")
    written = await asyncio.gather(
        *(checklist.submit("1.1", ALL_YES, f"sup{n}", reason="again") for n in range(4))
    )
    assert sorted(r.revision for r in written) == [2, 3, 4, 5]


async def test_a_stored_answer_outside_yes_no_na_is_refused_by_the_database(
    engine: AsyncEngine,
) -> None:
    await store(engine, record("1.1"))
    await service(engine).submit("1.1", ALL_YES, "kim")
    row = {
        "linkedid": "1.1",
        "revision": 1,
        "item_id": "extra",
        "position": 99,
        "answer": "maybe",
        "comment": "",
        "measured": False,
        "overridden": False,
    }
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(insert(answers_table).values(row))


async def test_what_cannot_be_scored_is_refused(engine: AsyncEngine) -> None:
    await store(engine, record("1.1"), record("1.2", answered_by=None))
    checklist = service(engine)
    with pytest.raises(NotFound):
        await checklist.submit("9.9", ALL_YES, "kim")
    with pytest.raises(Refused, match="not answered"):
        await checklist.submit("1.2", ALL_YES, "kim")
    with pytest.raises(ChecklistError, match="p3_explain: not answered"):
        await checklist.submit("1.1", {"p1_greeting": Given("yes")}, "kim")
    assert (await checklist.history("1.1")).revisions == ()


async def test_a_failing_listener_does_not_lose_the_revision(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    await store(engine, record("1.1"))

    def broken(revision: Revision, first: bool) -> None:
        raise RuntimeError("metrics bug")

    revision = await service(engine, on_submitted=broken).submit("1.1", ALL_YES, "kim")
    assert (await service(engine).history("1.1")).latest == revision
    assert "on_submitted failed" in caplog.text


# --------------------------------------------------------------------------- staff's answer


async def test_staff_acknowledge_their_latest_revision_once(engine: AsyncEngine) -> None:
    await store(engine, record("1.1"))
    checklist = service(engine)
    await checklist.submit("1.1", ALL_YES, "kim")
    with pytest.raises(Refused, match="scored 201, not 202"):
        await checklist.acknowledge("1.1", 1, "202")
    with pytest.raises(NotFound):
        await checklist.acknowledge("1.1", 7, "201")
    ack = await checklist.acknowledge("1.1", 1, "201")
    with pytest.raises(Refused, match="already acknowledged or disputed"):
        await checklist.acknowledge("1.1", 1, "201")
    with pytest.raises(Refused, match="already acknowledged or disputed"):
        await checklist.dispute("1.1", 1, "201", "p3_repeat", "I did")
    await checklist.submit("1.1", ALL_YES, "kim", reason="typo")
    with pytest.raises(Refused, match="revision 1 was corrected: revision 2 counts"):
        await checklist.dispute("1.1", 1, "201", "p3_repeat", "I did")
    assert (await checklist.history("1.1")).acknowledgements == (ack,)


async def test_a_dispute_upheld(engine: AsyncEngine) -> None:
    await store(engine, record("1.1"))
    checklist = service(engine)
    await checklist.submit("1.1", ALL_YES | {"p3_repeat": Given("no")}, "kim")
    with pytest.raises(Refused, match="comment: required"):
        await checklist.dispute("1.1", 1, "201", "p3_repeat", " ")
    with pytest.raises(Refused, match="item 'p9' is not in revision 1"):
        await checklist.dispute("1.1", 1, "201", "p9", "why")
    dispute = await checklist.dispute("1.1", 1, "201", "p3_repeat", "I repeated it twice")
    assert dispute.open
    assert await checklist.open_disputes(["민원여권과"]) == [dispute]
    assert await checklist.open_disputes(["총무과"]) == []

    upheld = await checklist.uphold("1.1", 1, "supervisor-lee", "listened: not repeated")
    assert (upheld.resolution, upheld.resolved_by, upheld.resolving_revision) == (
        "upheld",
        "supervisor-lee",
        None,
    )
    with pytest.raises(Refused, match="resolved already"):
        await checklist.uphold("1.1", 1, "supervisor-lee", "again")
    assert (await checklist.history("1.1")).disputes == (upheld,)
    assert await checklist.open_disputes(["민원여권과"]) == []


async def test_a_dispute_resolved_by_a_new_revision(engine: AsyncEngine) -> None:
    await store(engine, record("1.1"))
    checklist = service(engine)
    await checklist.submit("1.1", ALL_YES | {"p3_repeat": Given("no")}, "kim")
    with pytest.raises(NotFound):
        await checklist.revise("1.1", 1, ALL_YES, "lee", "no dispute yet")
    await checklist.dispute("1.1", 1, "201", "p3_repeat", "I repeated it")
    # A bad submission resolves nothing.
    with pytest.raises(ChecklistError):
        await checklist.revise("1.1", 1, {}, "lee", "right")
    revision, dispute = await checklist.revise("1.1", 1, ALL_YES, "lee", "right, repeated")
    assert (revision.revision, revision.reason, revision.score) == (2, "right, repeated", 100.0)
    assert (dispute.resolution, dispute.resolving_revision, dispute.resolved_by) == (
        "revised",
        2,
        "lee",
    )
    assert dispute.resolved_at == revision.submitted_at
    history = await checklist.history("1.1")
    assert [r.revision for r in history.revisions] == [1, 2]
    assert history.disputes == (dispute,)
    # The new revision is the staff member's to acknowledge.
    assert (await checklist.acknowledge("1.1", 2, "201")).revision == 2


# --------------------------------------------------------------------------- sampling


def month_calls() -> list[CallRecord]:
    """201's eligible March calls 1.0-1.9, and calls sampling must not see."""
    eligible = [record(f"1.{n}", started=T0 + timedelta(hours=n)) for n in range(10)]
    march_starts = datetime(2026, 2, 28, 15, 0, tzinfo=UTC)  # 00:00 KST
    edge = record("2.0", started=march_starts)  # the first instant of March in Seoul
    return [
        *eligible,
        edge,
        record("3.0", started=march_starts - timedelta(microseconds=1)),  # February in Seoul
        record("3.1", started=datetime(2026, 3, 31, 15, 0, tzinfo=UTC)),  # April in Seoul
        record("3.2", answered_by=None),  # missed
        record("3.3", direction="outbound"),
        record("3.4", incomplete=True),
        record("3.5", answered_by="202"),  # someone else's
        record("3.6", direction="internal"),
    ]


async def test_sampling_picks_in_the_keyed_order_and_skips_what_is_scored(
    engine: AsyncEngine,
) -> None:
    await store(engine, *month_calls())
    eligible = [f"1.{n}" for n in range(10)] + ["2.0"]
    assert sorted(await sampling_candidates(engine, "2026-03", "201")) == sorted(eligible)
    order = sampling_order("2026-03", "201", eligible)
    checklist = service(engine, monthly_target=3)

    picked = []
    for _ in range(4):
        pick = await checklist.next_to_score("201", "2026-03")
        assert pick.linkedid is not None
        picked.append(pick.linkedid)
        await checklist.submit(pick.linkedid, ALL_YES, "kim")
    assert picked == order[:4]
    pick = await checklist.next_to_score("201", "2026-03")
    assert (pick.candidates, pick.progress.scored, pick.progress.eligible) == (7, 4, 11)
    assert pick.progress.done
    assert (await checklist.next_to_score("202")).month == "2026-03"  # the clock's month
    none = await checklist.next_to_score("204", "2026-03")
    assert (none.linkedid, none.candidates, none.progress.done) == (None, 0, True)
    audit = await checklist.sampling_audit("201", "2026-03")
    assert [(a.linkedid, a.scored) for a in audit] == [(i, i in picked) for i in order]
    assert [a.key for a in audit] == sorted(a.key for a in audit)


async def test_progress_counts_each_call_once_at_its_latest_revision(
    engine: AsyncEngine,
) -> None:
    await store(engine, *month_calls())
    checklist = service(engine, monthly_target=4)
    await checklist.submit("1.0", ALL_YES, "kim")
    await checklist.submit("1.1", ALL_YES | {"p1_greeting": Given("no")}, "kim")  # failed
    await checklist.submit("1.1", ALL_YES, "kim", reason="misheard")  # now passed, 100
    await checklist.submit("1.2", ALL_YES | {"p3_repeat": Given("no")}, "kim")  # 81.82
    await checklist.submit("3.5", ALL_YES, "kim")  # 202's
    await checklist.submit("3.1", ALL_YES, "kim")  # 201's, but April
    progress = {p.staff: p for p in await checklist.progress("민원여권과", "2026-03")}
    assert set(progress) == {"201", "202"}
    kim = progress["201"]
    assert (kim.scored, kim.eligible, kim.target, kim.passed) == (3, 11, 4, 3)
    assert kim.average_score == round((100 + 100 + 81.82) / 3, 2)
    assert not kim.done
    lee = progress["202"]
    assert (lee.scored, lee.eligible, lee.passed, lee.average_score) == (1, 1, 1, 100.0)
    assert lee.done  # fewer eligible calls than the target, all scored
    [park] = await checklist.progress("총무과", "2026-03")
    assert (park.staff, park.scored, park.eligible, park.average_score) == ("203", 0, 0, None)


async def test_a_staff_members_scored_calls_are_their_latest_revisions(
    engine: AsyncEngine,
) -> None:
    await store(engine, *month_calls())
    checklist = service(engine)
    await checklist.submit("1.0", ALL_YES, "kim")
    await checklist.submit("1.1", ALL_YES | {"p1_greeting": Given("no")}, "kim")
    await checklist.submit("1.1", ALL_YES, "kim", reason="misheard")
    await checklist.submit("3.5", ALL_YES, "kim")  # 202's
    await checklist.submit("3.1", ALL_YES, "kim")  # 201's, but April
    scored = await checklist.scored("201", "2026-03")
    assert [(r.linkedid, r.revision, r.passed) for r in scored] == [
        ("1.1", 2, True),
        ("1.0", 1, True),
    ]  # newest call first (1.1 started after 1.0)
    assert [r.linkedid for r in await checklist.scored("201", "2026-04")] == ["3.1"]
    assert [r.linkedid for r in await checklist.scored("202", "2026-03")] == ["3.5"]
    assert await checklist.scored("203", "2026-03") == []


async def test_a_rewritten_call_keeps_its_checklist(engine: AsyncEngine) -> None:
    await store(engine, record("1.1"))
    checklist = service(engine)
    revision = await checklist.submit("1.1", ALL_YES, "kim")
    await store(engine, record("1.1"))  # the writer replaces the call's rows
    assert (await checklist.history("1.1")).revisions == (revision,)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(answers_table.c.item_id))).scalars().all()
    assert len(rows) == len(FORM.items)


# --------------------------------------------------------------------------- recorded calls


async def test_recorded_calls_ask_what_happened_on_them(engine: AsyncEngine) -> None:
    """Calls replayed from the real PBX recordings, stored, then opened for a checklist."""
    names = {
        "ring3": "c_answer_3rings_breach.ami",
        "attended": "f1_attended_transfer_2s.ami",
        "pickup": "i1_group_pickup.ami",
        "blind": "e_blind_transfer.ami",
    }
    writer = StoreWriter(engine, StoreSettings(flush_interval_seconds=3600.0))
    linkedids = {}
    for key, name in names.items():
        for result in replay([recording_path(name)], Settings()):
            if isinstance(result, JudgedCall) and result.record.direction == "inbound":
                writer.submit(result.record, result.verdict)
                linkedids[key] = result.record.linkedid
    await writer.close()
    checklist = service(engine)

    async def asked(key: str) -> dict[str, tuple[bool, str | None]]:
        prepared = await checklist.prepare(linkedids[key])
        return {a.item.id: (a.applicable, a.prefilled) for a in prepared.asked}

    ring3 = await asked("ring3")  # answered on ring 3: apologise; P1 measured as missed
    assert ring3["p2_apology"] == (True, None)
    assert ring3["p1_rings"] == (True, "no")
    assert ring3["p7_caller_hangs_up"] == (True, "yes")
    assert ring3["p4_briefing"] == (False, None)

    attended = await asked("attended")  # briefed hand-over to 202, same department
    assert attended["p4_briefing"] == (True, None)
    assert attended["p4_transfer_wait"] == (True, "yes")
    assert attended["p5_direct_number"] == (False, None)
    assert attended["p2_apology"] == (False, None)
    facts = (await checklist.prepare(linkedids["attended"])).facts
    assert [t.to_department for t in facts.transfers] == ["민원여권과"]

    blind = await asked("blind")
    assert blind["p4_briefing"] == (False, None)
    assert blind["p4_transfer_wait"] == (True, "yes")

    pickup = await asked("pickup")  # 201's call picked up by 203: the memo item
    assert pickup["p6_memo"] == (True, None)

    # Scored the ring-3 call with the apology said: the score counts it.
    answers = ALL_YES | {"p2_apology": Given("yes")}
    revision = await checklist.submit(linkedids["ring3"], answers, "supervisor-kim")
    assert (revision.score, revision.staff) == (round(100 * 11 / 12, 2), "201")  # P1 missed
