"""Callback obligations (P6, V4) in the store: the current snapshot and every transition.

- ``obligations``: one row per obligation (:class:`~call_monitor.charter.callbacks.Obligation`),
  the latest snapshot, rewritten (upsert) on every change. ``attempt_count`` counts the
  unanswered callback attempts; ``reminded_at`` / ``overdue_at`` say when the reminder and
  the overdue transition happened (``NULL``: not yet), also after the obligation closed.
- ``obligation_changes``: the obligation's history, one row per
  :class:`~call_monitor.charter.callbacks.Change` (``position`` from 0, the change's
  ``ObligationChange.position``): when, what, the state after it, why, the call and the
  person. It is the only record of the joined calls' linkedids and of the attempts
  (:class:`~call_monitor.charter.callbacks.ObligationHistory` derives both; until migration
  0004 the snapshot row also held them as JSON lists, rewritten whole on every change).

:func:`save_changes` writes a batch of tracker changes and their outbox messages in ONE
transaction (an alert exists exactly when its change does). It is idempotent: the snapshot is
an upsert and a change row that is already there is skipped, so a batch retried after an
unknown outcome (a connection lost during COMMIT) leaves the same rows.

Reading: :func:`load_open` rebuilds the open obligations' compact snapshots exactly, for
:meth:`CallbackTracker.restore` (the counts of their history that the alerts' idempotency
keys and the next change's position depend on are counted in SQL, not loaded);
:func:`load_obligation` and :func:`list_obligations` give snapshots the same way, and
:func:`load_histories` / :func:`load_history` the history rows, for the API.

PostgreSQL text cannot hold NUL: there, and only there, a NUL character in a stored string
becomes U+FFFD (an AMI caller name may contain one; the obligation matters more than the
byte). Everything else is stored as given.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, Table, Text, func, insert, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql import Select

from call_monitor.charter.obligations import (
    CHANGE,
    CHANGE_KINDS,
    NO_CHANGES,
    OBLIGATION,
    OPEN_STATES,
    Change,
    Obligation,
    ObligationChange,
    ObligationHistory,
)
from call_monitor.store import sqlite_batch
from call_monitor.store.chunks import chunks
from call_monitor.store.models import Base, UtcDateTime
from call_monitor.store.outbox import QueuedMessage, enqueue
from call_monitor.store.rows import Row, TableMap
from call_monitor.timefmt import SEOUL


class ObligationRow(Base):
    __tablename__ = "obligations"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    source: Mapped[str] = mapped_column(Text)  # missed_call | memo
    owner: Mapped[str] = mapped_column(Text)  # an extension or a department
    owner_kind: Mapped[str] = mapped_column(Text)  # staff | department
    owner_department: Mapped[str | None] = mapped_column(Text)
    number: Mapped[str] = mapped_column(Text)  # normalised: the key with the owner
    raw_number: Mapped[str] = mapped_column(Text)  # as first seen
    caller_name: Mapped[str] = mapped_column(Text)
    matter: Mapped[str] = mapped_column(Text)
    taken_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reminder_at: Mapped[datetime] = mapped_column(UtcDateTime)
    state: Mapped[str] = mapped_column(Text)
    attempt_count: Mapped[int] = mapped_column(Integer)
    reminded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    overdue_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_cause: Mapped[str | None] = mapped_column(Text)
    closed_by: Mapped[str | None] = mapped_column(Text)
    closing_call: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_obligations_state", "state"),
        Index("ix_obligations_owner_state", "owner", "state"),
        Index("ix_obligations_owner_department_state", "owner_department", "state"),
        Index("ix_obligations_number", "number"),
    )


class ObligationChangeRow(Base):
    __tablename__ = "obligation_changes"

    obligation_id: Mapped[str] = mapped_column(
        Text, ForeignKey("obligations.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(Text)
    state_after: Mapped[str] = mapped_column(Text)
    cause: Mapped[str] = mapped_column(Text)
    call_id: Mapped[str | None] = mapped_column(Text)  # the linkedid of the call, if any
    by: Mapped[str | None] = mapped_column(Text)  # who placed / answered / cancelled / wrote

    __table_args__ = (
        Index("ix_obligation_changes_at", "at"),
        Index("ix_obligation_changes_call_id", "call_id"),  # a call's obligations (0008)
    )


obligations_table: Table = Base.metadata.tables["obligations"]
obligation_changes_table: Table = Base.metadata.tables["obligation_changes"]


# --------------------------------------------------------------------------- rows


# The obligation's mapping (charter.obligations.OBLIGATION) to its snapshot row.
OBLIGATIONS = TableMap(
    obligations_table,
    # The cause of the change that closed it, if it did: the change's, not the snapshot's.
    context=("closed_cause",),
    renamed={"number_raw": "raw_number"},
    not_stored={
        "missed_calls": "counted from the obligation_changes rows when read",
        "history_length": "counted from the obligation_changes rows when read",
        "kind_counts": "counted from the obligation_changes rows when read",
    },
)
# A change's mapping (charter.obligations.CHANGE) to its history row.
CHANGES = TableMap(
    obligation_changes_table,
    context=("obligation_id", "position"),
    renamed={"state": "state_after", "linkedid": "call_id"},
)


# Generated from the maps above and the shapes (TableMap.compile): every change is written.
_OBLIGATION_ROW = OBLIGATIONS.compile(OBLIGATION)
_CHANGE_ROW = CHANGES.compile(CHANGE)


def obligation_row(obligation: Obligation, closed_cause: str | None = None) -> Row:
    """The snapshot row; ``closed_cause``: the cause of the change that closed it, if it did."""
    return _OBLIGATION_ROW(
        obligation, closed_cause=None if obligation.closed_at is None else closed_cause
    )


def change_row(change: ObligationChange) -> Row:
    return _CHANGE_ROW(change.change, obligation_id=change.obligation.id, position=change.position)


def _no_nul(rows: list[Row]) -> list[Row]:
    return [
        {k: v.replace("\x00", "\ufffd") if isinstance(v, str) else v for k, v in row.items()}
        for row in rows
    ]


# --------------------------------------------------------------------------- writing


async def save_changes(
    engine: AsyncEngine,
    changes: Sequence[ObligationChange],
    outbox_messages: Iterable[QueuedMessage] = (),
) -> None:
    """Write ``changes`` (snapshots and history rows) and ``outbox_messages`` in one
    transaction; idempotent (see the module docstring)."""
    async with engine.begin() as conn:
        await write_changes(conn, changes, outbox_messages)


async def write_changes(
    conn: AsyncConnection,
    changes: Sequence[ObligationChange],
    outbox_messages: Iterable[QueuedMessage] = (),
) -> None:
    """:func:`save_changes` inside the caller's transaction on ``conn``."""

    latest: dict[str, ObligationChange] = {}
    for change in changes:
        latest[change.obligation.id] = change  # the last snapshot wins
    # Nothing follows the change that closes an obligation: when closed, the last is it.
    snapshots = [obligation_row(c.obligation, c.change.cause) for c in latest.values()]
    history = [change_row(c) for c in changes]
    if conn.dialect.name == "postgresql":
        snapshots, history = _no_nul(snapshots), _no_nul(history)
    if snapshots:
        await _upsert(conn, obligations_table, snapshots, ["id"], update=True)
    if history:
        await _upsert(
            conn, obligation_changes_table, history, ["obligation_id", "position"], update=False
        )
    await enqueue(conn, outbox_messages)


async def _upsert(
    conn: AsyncConnection, table: Table, rows: list[Row], keys: list[str], *, update: bool
) -> None:
    dialect = conn.dialect.name
    if dialect == "sqlite":
        await sqlite_batch.insert_rows(conn, table, rows, on_conflict=tuple(keys), update=update)
        return
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table)
        if update:
            excluded = statement.excluded
            columns = {c.name: excluded[c.name] for c in table.columns if c.name not in keys}
            statement = statement.on_conflict_do_update(index_elements=keys, set_=columns)
        else:
            statement = statement.on_conflict_do_nothing(index_elements=keys)
        await conn.execute(statement, rows)
        return
    # Any other backend: look the keys up first, then insert or update row by row.
    for row in rows:
        condition = [table.c[k] == row[k] for k in keys]
        found = (await conn.execute(select(table.c[keys[0]]).where(*condition))).first()
        if found is None:
            await conn.execute(insert(table), [row])
        elif update:
            await conn.execute(table.update().where(*condition).values(**row))


# --------------------------------------------------------------------------- reading


def _seoul(at: datetime | None) -> datetime | None:
    return None if at is None else at.astimezone(SEOUL)


@dataclass(slots=True)
class _Tally:
    """What a snapshot counts of its history, counted from the history rows."""

    kinds: list[int]
    missed_calls: int = 0
    length: int = 0  # the last position + 1 (a change set aside leaves a gap: not reused)


def _obligation(row: Any, tally: _Tally | None) -> Obligation:
    return OBLIGATIONS.record(
        OBLIGATION,
        row._mapping,
        _seoul,
        missed_calls=0 if tally is None else tally.missed_calls,
        history_length=0 if tally is None else tally.length,
        kind_counts=NO_CHANGES if tally is None else tuple(tally.kinds),
    )


async def _tallies(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, _Tally]:
    """Per obligation: its changes by kind, its missed calls and its history's length,
    counted by the database (one row per obligation and kind comes back)."""
    index = {kind: i for i, kind in enumerate(CHANGE_KINDS)}
    table = obligation_changes_table
    tallies: dict[str, _Tally] = {}
    for chunk in chunks(ids):
        result = await conn.execute(
            select(
                table.c.obligation_id,
                table.c.kind,
                func.count(),
                func.count(table.c.call_id),
                func.max(table.c.position),
            )
            .where(table.c.obligation_id.in_(chunk))
            .group_by(table.c.obligation_id, table.c.kind)
        )
        for obligation_id, kind, changes, with_call, last in result:
            tally = tallies.setdefault(obligation_id, _Tally(list(NO_CHANGES)))
            if kind in index:
                tally.kinds[index[kind]] += changes
            if kind in ("created", "joined"):
                tally.missed_calls += with_call  # a memo creates without a call
            tally.length = max(tally.length, last + 1)
    return tallies


async def _load(conn: AsyncConnection, query: Select[Any]) -> list[Obligation]:
    rows = (await conn.execute(query)).all()
    tallies = await _tallies(conn, [row.id for row in rows])
    return [_obligation(row, tallies.get(row.id)) for row in rows]


async def load_open(engine: AsyncEngine) -> list[Obligation]:
    """Every open obligation (open, reminded, overdue), exactly as last saved."""
    table = obligations_table
    query = (
        select(table)
        .where(table.c.state.in_(sorted(OPEN_STATES)))
        .order_by(table.c.created_at, table.c.id)
    )
    async with engine.connect() as conn:
        return await _load(conn, query)


async def load_applied_calls(engine: AsyncEngine, limit: int) -> list[str]:
    """The linkedids of the last ``limit`` calls that changed an obligation, oldest first
    (for :meth:`CallbackTracker.restore_applied`)."""
    table = obligation_changes_table
    latest = (
        select(table.c.call_id, func.max(table.c.at).label("at"))
        .where(table.c.call_id.is_not(None))
        .group_by(table.c.call_id)
        .order_by(func.max(table.c.at).desc(), table.c.call_id.desc())
        .limit(limit)
        .subquery()
    )
    query = select(latest.c.call_id).order_by(latest.c.at, latest.c.call_id)
    async with engine.connect() as conn:
        return [str(row) for row in (await conn.execute(query)).scalars()]


async def load_obligation(engine: AsyncEngine, obligation_id: str) -> Obligation | None:
    """One stored obligation, or ``None``."""
    query = select(obligations_table).where(obligations_table.c.id == obligation_id)
    async with engine.connect() as conn:
        found = await _load(conn, query)
    return found[0] if found else None


async def list_obligations(
    engine: AsyncEngine,
    staff: str | None = None,
    department: str | None = None,
    state: str | Iterable[str] | None = None,
    *,
    limit: int | None = 1000,
) -> list[Obligation]:
    """Stored obligations, oldest first, filtered by any of:

    - ``staff``: owned by this extension;
    - ``department``: owned by this department or by one of its staff (``owner_department``);
    - ``state``: one state or several (any of them).

    At most ``limit`` (``None``: all); the newest are kept when there are more.
    """
    table = obligations_table
    query = select(table)
    if staff is not None:
        query = query.where(table.c.owner_kind == "staff", table.c.owner == staff)
    if department is not None:
        query = query.where(table.c.owner_department == department)
    if state is not None:
        states = [state] if isinstance(state, str) else list(state)
        query = query.where(table.c.state.in_(states))
    if limit is not None:
        # The newest ``limit``, then back in creation order.
        newest = query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit)
        inner = newest.subquery()
        query = select(table).join(inner, inner.c.id == table.c.id)
    query = query.order_by(table.c.created_at, table.c.id)
    async with engine.connect() as conn:
        return await _load(conn, query)


async def load_histories(
    engine: AsyncEngine, obligations: Iterable[Obligation]
) -> dict[str, ObligationHistory]:
    """The stored history of each obligation by id, as far as its snapshot goes (the rows
    before ``history_length``: a change committed since the snapshot was read is left out)."""
    lengths = {o.id: o.history_length for o in obligations}
    changes: dict[str, list[Change]] = {obligation_id: [] for obligation_id in lengths}
    table = obligation_changes_table
    async with engine.connect() as conn:
        for chunk in chunks(list(lengths)):
            result = await conn.execute(
                select(table)
                .where(table.c.obligation_id.in_(chunk))
                .order_by(table.c.obligation_id, table.c.position)
            )
            for row in result:
                if row.position < lengths[row.obligation_id]:
                    changes[row.obligation_id].append(_change(row))
    return {i: ObligationHistory(tuple(found)) for i, found in changes.items()}


async def load_history(
    engine: AsyncEngine, obligation_id: str, before: int | None = None
) -> ObligationHistory:
    """One obligation's stored history (the rows before position ``before``, if given)."""
    table = obligation_changes_table
    query = select(table).where(table.c.obligation_id == obligation_id)
    if before is not None:
        query = query.where(table.c.position < before)
    async with engine.connect() as conn:
        result = await conn.execute(query.order_by(table.c.position))
        return ObligationHistory(tuple(_change(row) for row in result))


def _change(row: Any) -> Change:
    return CHANGES.record(CHANGE, row._mapping, _seoul)
