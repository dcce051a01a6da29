"""The web's reads over the calls: a filtered page of calls (keyset pagination, newest first),
their totals, and a staff member's month on the charter. Everything is filtered, counted and
limited in SQL: a month of 300,000 calls is never loaded to be cut in Python.

Keyset pagination: a page ends with the (``started_at``, ``linkedid``) of its last call; the
next page is the calls strictly before it in that order (``ix_calls_started_at_linkedid``
serves the range and the order), so page 100 costs what page 1 does, unlike ``OFFSET``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from call_monitor.store.checklists import revisions_table
from call_monitor.store.models import calls_table, verdicts_table

PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class CallFilter:
    """What the calls page asks for, and what the user may see (``departments`` ``None``:
    every department; ``extension``: a staff member's own calls only)."""

    since: datetime
    until: datetime
    department: str | None = None
    staff: str | None = None
    breached: str | None = None  # a clause: calls with a check of it not met
    missed: bool | None = None
    scored: bool | None = None  # with a supervisor's checklist (or without)
    departments: tuple[str, ...] | None = None
    extension: str | None = None


def _involving(extension: str) -> ColumnElement[bool]:
    """A call answered, placed or checked by ``extension``."""
    calls, verdicts = calls_table.c, verdicts_table.c
    return or_(
        calls.answered_by == extension,
        calls.staff == extension,
        exists().where(verdicts.linkedid == calls.linkedid, verdicts.staff == extension),
    )


def _conditions(wanted: CallFilter) -> list[ColumnElement[bool]]:
    calls, verdicts = calls_table.c, verdicts_table.c
    conditions = [calls.started_at >= wanted.since, calls.started_at < wanted.until]
    if wanted.departments is not None:
        conditions.append(calls.department.in_(wanted.departments))
    if wanted.extension is not None:
        conditions.append(_involving(wanted.extension))
    if wanted.department is not None:
        conditions.append(calls.department == wanted.department)
    if wanted.staff is not None:
        conditions.append(_involving(wanted.staff))
    if wanted.breached is not None:
        conditions.append(
            exists().where(
                verdicts.linkedid == calls.linkedid,
                verdicts.clause == wanted.breached,
                verdicts.met.is_(False),
            )
        )
    if wanted.missed is not None:
        conditions.append(calls.missed.is_(wanted.missed))
    if wanted.scored is not None:
        scored = exists().where(revisions_table.c.linkedid == calls.linkedid)
        conditions.append(scored if wanted.scored else ~scored)
    return conditions


async def list_calls(
    engine: AsyncEngine,
    wanted: CallFilter,
    *,
    before: tuple[datetime, str] | None = None,
    limit: int = PAGE_SIZE,
) -> list[dict[str, Any]]:
    """A page of calls, newest first, strictly before ``before`` (the previous page's last
    ``(started_at, linkedid)``), with each call's breached clauses."""
    calls, verdicts = calls_table.c, verdicts_table.c
    conditions = _conditions(wanted)
    if before is not None:
        at, linkedid = before
        conditions.append(
            or_(calls.started_at < at, and_(calls.started_at == at, calls.linkedid < linkedid))
        )
    query = (
        select(calls_table)
        .where(and_(*conditions))
        .order_by(calls.started_at.desc(), calls.linkedid.desc())
        .limit(limit)
    )
    async with engine.connect() as conn:
        rows = [dict(row._mapping) for row in await conn.execute(query)]
        if not rows:
            return rows
        breached = await conn.execute(
            select(verdicts.linkedid, verdicts.clause)
            .where(verdicts.linkedid.in_([r["linkedid"] for r in rows]), verdicts.met.is_(False))
            .distinct()
        )
        clauses: dict[str, list[str]] = {}
        for linkedid, clause in breached:
            clauses.setdefault(linkedid, []).append(clause)
    for row in rows:
        row["breached"] = sorted(clauses.get(row["linkedid"], []))
    return rows


async def call_totals(engine: AsyncEngine, wanted: CallFilter) -> dict[str, int]:
    """How many calls match, how many of them were missed, answered and judged P1-met."""
    calls = calls_table.c
    query = select(
        func.count(),
        func.coalesce(func.sum(case((calls.missed.is_(True), 1), else_=0)), 0),
        func.coalesce(func.sum(case((calls.answered_at.is_not(None), 1), else_=0)), 0),
    ).where(and_(*_conditions(wanted)))
    async with engine.connect() as conn:
        total, missed, answered = (await conn.execute(query)).one()
    return {"calls": int(total), "missed": int(missed), "answered": int(answered)}


async def staff_month(
    engine: AsyncEngine, extension: str, since: datetime, until: datetime
) -> dict[str, tuple[int, int]]:
    """Per clause (P1, P7): (checks met, checks) of ``extension`` for calls started in the
    span."""
    calls, verdicts = calls_table.c, verdicts_table.c
    query = (
        select(
            verdicts.clause,
            func.coalesce(func.sum(case((verdicts.met.is_(True), 1), else_=0)), 0),
            func.count(),
        )
        .join(calls_table, calls.linkedid == verdicts.linkedid)
        .where(
            verdicts.staff == extension,
            verdicts.clause.in_(["P1", "P7"]),
            calls.started_at >= since,
            calls.started_at < until,
        )
        .group_by(verdicts.clause)
    )
    async with engine.connect() as conn:
        return {clause: (int(met), int(n)) for clause, met, n in await conn.execute(query)}
