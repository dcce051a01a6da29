"""The supervisors' checklists in the store: revisions, their answers, acknowledgements and
disputes (:mod:`call_monitor.checklist.revisions`), and the queries the pages need.

- ``checklist_revisions``: one row per revision, key ``(linkedid, revision)``; never updated
  (a correction is a new row). ``staff``, ``department`` and ``call_started_at`` are copied
  from the call when scored, so sampling, progress and exports read them without the
  ``calls`` row (which the writer replaces when a call is written again: no foreign key to
  it, or a rewrite would cascade the checklists away).
- ``checklist_answers``: one row per item of a revision, in the form's order (``position``).
- ``checklist_acknowledgements``: at most one per revision: who, when.
- ``checklist_disputes``: at most one per revision: the item, the comment, and once resolved,
  how (``upheld`` / ``revised``), by whom, when, and the revision that resolved it.

The queries aggregate in SQL: a month of calls is never loaded to count it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    Table,
    Text,
    and_,
    case,
    exists,
    func,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from call_monitor.checklist.revisions import (
    ACKNOWLEDGEMENT,
    DISPUTE,
    REVISION,
    SCORED_ITEM,
    Acknowledgement,
    Dispute,
    History,
    Revision,
)
from call_monitor.checklist.sampling import month_window
from call_monitor.store.models import Base, UtcDateTime, calls_table
from call_monitor.store.rows import TableMap

_REVISION_KEY = ("linkedid", "revision")


def _of_revision(table: str) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        list(_REVISION_KEY),
        [f"checklist_revisions.{column}" for column in _REVISION_KEY],
        name=f"fk_{table}_linkedid_checklist_revisions",
    )


class ChecklistRevisionRow(Base):
    __tablename__ = "checklist_revisions"

    linkedid: Mapped[str] = mapped_column(Text, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    form_id: Mapped[str] = mapped_column(Text)
    form_version: Mapped[str] = mapped_column(Text)
    supervisor: Mapped[str] = mapped_column(Text)
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
    score: Mapped[float | None] = mapped_column(Double)
    passed: Mapped[bool] = mapped_column(Boolean)
    staff: Mapped[str | None] = mapped_column(Text)
    department: Mapped[str | None] = mapped_column(Text)
    call_started_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_checklist_revisions_staff_call_started_at", "staff", "call_started_at"),
        Index("ix_checklist_revisions_department_call_started_at", "department", "call_started_at"),
    )


class ChecklistAnswerRow(Base):
    __tablename__ = "checklist_answers"

    linkedid: Mapped[str] = mapped_column(Text, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    item_id: Mapped[str] = mapped_column(Text, primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    answer: Mapped[str] = mapped_column(Text)
    comment: Mapped[str] = mapped_column(Text)
    measured: Mapped[bool] = mapped_column(Boolean)
    overridden: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (
        _of_revision("checklist_answers"),
        CheckConstraint("answer IN ('yes', 'no', 'na')", name="answer"),
    )


class ChecklistAcknowledgementRow(Base):
    __tablename__ = "checklist_acknowledgements"

    linkedid: Mapped[str] = mapped_column(Text, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    staff: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (_of_revision("checklist_acknowledgements"),)


class ChecklistDisputeRow(Base):
    __tablename__ = "checklist_disputes"

    linkedid: Mapped[str] = mapped_column(Text, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    item_id: Mapped[str] = mapped_column(Text)
    staff: Mapped[str] = mapped_column(Text)
    comment: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    resolution: Mapped[str | None] = mapped_column(Text)  # upheld | revised; NULL: open
    resolved_by: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolution_comment: Mapped[str | None] = mapped_column(Text)
    resolving_revision: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        _of_revision("checklist_disputes"),
        Index("ix_checklist_disputes_resolution", "resolution"),
    )


revisions_table: Table = Base.metadata.tables["checklist_revisions"]
answers_table: Table = Base.metadata.tables["checklist_answers"]
acknowledgements_table: Table = Base.metadata.tables["checklist_acknowledgements"]
disputes_table: Table = Base.metadata.tables["checklist_disputes"]

REVISIONS = TableMap(revisions_table, not_stored={"items": "rows of checklist_answers"})
ANSWERS = TableMap(answers_table, context=("linkedid", "revision", "position"))
ACKNOWLEDGEMENTS = TableMap(acknowledgements_table)
DISPUTES = TableMap(disputes_table)


# --------------------------------------------------------------------------- writing


async def insert_revision(conn: AsyncConnection, revision: Revision) -> None:
    """The revision and its answers (an ``IntegrityError`` if its number is taken)."""
    await conn.execute(insert(revisions_table).values(REVISIONS.row(REVISION.values(revision))))
    rows = [
        ANSWERS.row(
            SCORED_ITEM.values(item),
            linkedid=revision.linkedid,
            revision=revision.revision,
            position=position,
        )
        for position, item in enumerate(revision.items)
    ]
    if rows:
        await conn.execute(insert(answers_table), rows)


async def insert_acknowledgement(conn: AsyncConnection, ack: Acknowledgement) -> None:
    await conn.execute(
        insert(acknowledgements_table).values(ACKNOWLEDGEMENTS.row(ACKNOWLEDGEMENT.values(ack)))
    )


async def insert_dispute(conn: AsyncConnection, dispute: Dispute) -> None:
    await conn.execute(insert(disputes_table).values(DISPUTES.row(DISPUTE.values(dispute))))


async def close_dispute(conn: AsyncConnection, dispute: Dispute) -> bool:
    """Record ``dispute``'s resolution on its row if it is still open; ``False`` if it was
    resolved meanwhile (by another supervisor)."""
    key = _key(disputes_table, dispute.linkedid, dispute.revision)
    result = await conn.execute(
        disputes_table.update()
        .where(key, disputes_table.c.resolution.is_(None))
        .values(
            resolution=dispute.resolution,
            resolved_by=dispute.resolved_by,
            resolved_at=dispute.resolved_at,
            resolution_comment=dispute.resolution_comment,
            resolving_revision=dispute.resolving_revision,
        )
    )
    return bool(result.rowcount)


# --------------------------------------------------------------------------- reading


def _same_revision(table: Table, other: Any) -> Any:
    return and_(table.c.linkedid == other.c.linkedid, table.c.revision == other.c.revision)


def _key(table: Table, linkedid: str, revision: int) -> Any:
    return and_(table.c.linkedid == linkedid, table.c.revision == revision)


async def latest_number(conn: AsyncConnection, linkedid: str) -> int:
    """The call's latest revision number; 0 if it was never scored."""
    result = await conn.execute(
        select(func.coalesce(func.max(revisions_table.c.revision), 0)).where(
            revisions_table.c.linkedid == linkedid
        )
    )
    return int(result.scalar_one())


async def load_history(conn: AsyncConnection, linkedid: str) -> History:
    """Every revision of the call (with its answers), acknowledgement and dispute."""

    def rows(table: Table, *order: Any) -> Any:
        return conn.execute(
            select(table).where(table.c.linkedid == linkedid).order_by(table.c.revision, *order)
        )

    revisions = (await rows(revisions_table)).mappings().all()
    answers = (await rows(answers_table, answers_table.c.position)).mappings().all()
    acks = (await rows(acknowledgements_table)).mappings().all()
    disputes = (await rows(disputes_table)).mappings().all()
    return History(
        linkedid,
        revisions=tuple(_revisions(revisions, answers)),
        acknowledgements=tuple(ACKNOWLEDGEMENTS.record(ACKNOWLEDGEMENT, row) for row in acks),
        disputes=tuple(DISPUTES.record(DISPUTE, row) for row in disputes),
    )


def _revisions(revisions: Sequence[Any], answers: Sequence[Any]) -> Iterable[Revision]:
    by_revision: dict[tuple[str, int], list[Any]] = {}
    for answer in answers:
        by_revision.setdefault((answer["linkedid"], answer["revision"]), []).append(answer)
    for row in revisions:
        items = by_revision.get((row["linkedid"], row["revision"]), [])
        yield REVISIONS.record(
            REVISION, row, items=tuple(ANSWERS.record(SCORED_ITEM, item) for item in items)
        )


async def latest_revisions(engine: AsyncEngine, linkedids: Sequence[str]) -> dict[str, Revision]:
    """The latest revision of each of ``linkedids`` that was scored (exports, call lists),
    with its answers: two statements, the latest picked in SQL."""
    if not linkedids:
        return {}
    latest = (
        select(revisions_table.c.linkedid, func.max(revisions_table.c.revision).label("revision"))
        .where(revisions_table.c.linkedid.in_(linkedids))
        .group_by(revisions_table.c.linkedid)
        .subquery()
    )
    async with engine.connect() as conn:
        revisions = await conn.execute(
            select(revisions_table).join(latest, _same_revision(revisions_table, latest))
        )
        answers = await conn.execute(
            select(answers_table)
            .join(latest, _same_revision(answers_table, latest))
            .order_by(answers_table.c.position)
        )
        found = _revisions(revisions.mappings().all(), answers.mappings().all())
        return {revision.linkedid: revision for revision in found}


def _eligible(month: str, staff: str) -> Any:
    """The staff member's answered, complete inbound calls started in ``month`` (Asia/Seoul):
    what sampling picks from (``checklist.sampling``), scored or not."""
    start, end = month_window(month)
    calls = calls_table.c
    return (
        calls.started_at >= start,
        calls.started_at < end,
        calls.answered_by == staff,
        calls.direction == "inbound",
        calls.incomplete.is_(False),
        calls.answered_at.is_not(None),
    )


def _scored() -> Any:
    return exists().where(revisions_table.c.linkedid == calls_table.c.linkedid)


async def sampling_candidates(engine: AsyncEngine, month: str, staff: str) -> list[str]:
    """The linkedids sampling picks from: the eligible calls not scored yet."""
    query = select(calls_table.c.linkedid).where(*_eligible(month, staff), ~_scored())
    async with engine.connect() as conn:
        return list((await conn.execute(query)).scalars())


async def eligible_calls(engine: AsyncEngine, month: str, staff: str) -> dict[str, bool]:
    """Every eligible call of the month, scored or not (linkedid -> scored): an auditor's
    view of sampling (``ChecklistService.sampling_audit``)."""
    query = select(calls_table.c.linkedid, _scored()).where(*_eligible(month, staff))
    async with engine.connect() as conn:
        return {linkedid: bool(scored) for linkedid, scored in await conn.execute(query)}


@dataclass(frozen=True, slots=True)
class StaffProgress:
    """One staff member's month: calls scored (latest revisions) and the target."""

    staff: str
    scored: int  # calls of the month with a checklist
    eligible: int  # answered, complete inbound calls of the month (scored or not)
    target: int
    passed: int  # scored calls whose latest revision passed
    average_score: float | None  # over the latest revisions with a score

    @property
    def done(self) -> bool:
        """The target reached, or nothing left to score."""
        return self.scored >= self.target or self.scored >= self.eligible


async def progress(
    engine: AsyncEngine, month: str, staff: Sequence[str], target: int
) -> list[StaffProgress]:
    """Each of ``staff`` (extensions, the department's from the directory) in ``month``:
    two grouped statements, one over the latest revisions, one over the calls."""
    start, end = month_window(month)
    r = revisions_table.c
    latest = (
        select(r.linkedid, func.max(r.revision).label("revision"))
        .where(r.staff.in_(staff), r.call_started_at >= start, r.call_started_at < end)
        .group_by(r.linkedid)
        .subquery()
    )
    scored = (
        select(
            r.staff,
            func.count(),
            func.sum(case((r.passed, 1), else_=0)),
            func.avg(r.score),
        )
        .join(latest, _same_revision(revisions_table, latest))
        .group_by(r.staff)
    )
    c = calls_table.c
    eligible = (
        select(c.answered_by, func.count())
        .where(
            c.started_at >= start,
            c.started_at < end,
            c.answered_by.in_(staff),
            c.direction == "inbound",
            c.incomplete.is_(False),
            c.answered_at.is_not(None),
        )
        .group_by(c.answered_by)
    )
    async with engine.connect() as conn:
        scored_by = {row[0]: row[1:] for row in await conn.execute(scored)}
        eligible_by: dict[str, int] = {
            extension: int(count) for extension, count in await conn.execute(eligible)
        }
    result = []
    for extension in staff:
        count, passed, average = scored_by.get(extension, (0, 0, None))
        result.append(
            StaffProgress(
                staff=extension,
                scored=int(count),
                eligible=eligible_by.get(extension, 0),
                target=target,
                passed=int(passed or 0),
                average_score=None if average is None else round(float(average), 2),
            )
        )
    return result


async def open_disputes(engine: AsyncEngine, departments: Sequence[str]) -> list[Dispute]:
    """The open disputes of revisions scored in ``departments`` (a supervisor's queue)."""
    d, r = disputes_table.c, revisions_table.c
    query = (
        select(disputes_table)
        .join(revisions_table, _same_revision(revisions_table, disputes_table))
        .where(d.resolution.is_(None), r.department.in_(departments))
        .order_by(d.opened_at)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [DISPUTES.record(DISPUTE, dict(row)) for row in rows]


async def staff_revisions(engine: AsyncEngine, staff: str, month: str) -> list[Revision]:
    """The latest revision of each call of ``staff`` scored in ``month``, newest call first
    (without their answers: the staff home lists scores; the call page shows the items)."""
    start, end = month_window(month)
    r = revisions_table.c
    latest = (
        select(r.linkedid, func.max(r.revision).label("revision"))
        .where(r.staff == staff, r.call_started_at >= start, r.call_started_at < end)
        .group_by(r.linkedid)
        .subquery()
    )
    query = (
        select(revisions_table)
        .join(latest, _same_revision(revisions_table, latest))
        .order_by(r.call_started_at.desc())
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return list(_revisions(rows, []))
