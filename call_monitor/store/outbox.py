"""The transactional outbox: alerts are rows first, MQTT messages later.

Whoever changes an obligation inserts its messages (:func:`enqueue`) in the same database
transaction, so an alert exists exactly when the change does: a crash, a broker outage or a
restart can delay it, never lose it. :class:`~call_monitor.alerts.publisher.OutboxPublisher`
reads the undelivered rows in ``id`` order (:func:`pending`), publishes them and marks them
(:func:`mark_delivered`, :func:`mark_failed`). A row published but not yet marked when the
daemon dies goes out again: consumers drop it by its ``idempotency_key``.

The table lives on the store's metadata (``call_monitor.store.models.Base``) and is created by
migration ``0002_outbox``. The store knows a message only by the fields it keeps
(:class:`QueuedMessage`): what a message says and where it goes is the alerts' business
(``call_monitor.alerts.messages.OutboxMessage`` builds and checks them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Boolean, Index, Integer, Table, Text, func, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from call_monitor.store import sqlite_batch
from call_monitor.store.chunks import chunks
from call_monitor.store.models import Base, UtcDateTime

MAX_ERROR_CHARS = 2000


class QueuedMessage(Protocol):
    """What the outbox keeps of a message (``alerts.messages.OutboxMessage`` is one)."""

    @property
    def idempotency_key(self) -> str: ...
    @property
    def topic(self) -> str: ...
    @property
    def payload(self) -> str: ...  # JSON text; published as its UTF-8 bytes
    @property
    def qos(self) -> int: ...
    @property
    def retain(self) -> bool: ...


class OutboxRow(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(Text, unique=True)
    topic: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)  # JSON, published as UTF-8
    qos: Mapped[int] = mapped_column(Integer)
    retain: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer)  # publishes tried, the successful one too
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    # "WHERE delivered_at IS NULL ORDER BY id": a range of this index on both backends.
    __table_args__ = (Index("ix_outbox_delivered_at_id", "delivered_at", "id"),)


outbox_table: Table = Base.metadata.tables["outbox"]


@dataclass(frozen=True, slots=True)
class PendingMessage:
    """An undelivered outbox row."""

    id: int
    idempotency_key: str
    topic: str
    payload: str
    qos: int
    retain: bool
    attempts: int
    created_at: datetime


def _now() -> datetime:
    return datetime.now(UTC)


def outbox_rows(
    messages: Iterable[QueuedMessage], created_at: datetime | None = None
) -> list[dict[str, Any]]:
    """The ``outbox`` rows of ``messages`` (for a caller that builds its own INSERT)."""
    at = created_at or _now()
    return [
        {
            "idempotency_key": message.idempotency_key,
            "topic": message.topic,
            "payload": message.payload,
            "qos": message.qos,
            "retain": message.retain,
            "created_at": at,
            "attempts": 0,
            "last_error": None,
            "delivered_at": None,
        }
        for message in messages
    ]


async def enqueue(
    conn: AsyncConnection,
    messages: Iterable[QueuedMessage],
    *,
    created_at: datetime | None = None,
) -> int:
    """Insert ``messages`` on ``conn``, inside the caller's transaction; how many were new.

    Commit is the caller's (the alert must commit or roll back with the change it reports).
    A message whose ``idempotency_key`` is already in the outbox is skipped: the same change
    enqueued twice (say, replayed after a restart) is published once. Wake the publisher
    (``OutboxPublisher.wake``) after the commit, or it finds the rows on its next poll.
    """
    rows = outbox_rows(messages, created_at)
    if not rows:
        return 0
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return await sqlite_batch.insert_rows(
            conn, outbox_table, rows, on_conflict=("idempotency_key",)
        )
    inserted = 0
    for chunk in chunks(rows):
        if dialect != "postgresql":  # any other backend
            inserted += await _insert_new(conn, chunk)
            continue
        # Executemany with RETURNING: SQLAlchemy sends it as multi-row INSERTs built from one
        # cached compilation ("insertmanyvalues"), and the ids returned are the rows actually
        # inserted. (A ``.values(rows)`` statement has no cache key: compiled anew for every
        # chunk, it took 7 % of the event loop in benchmarks/ingest.py's PostgreSQL run.)
        statement = (
            postgresql.insert(outbox_table)
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(outbox_table.c.id)
        )
        result = await conn.execute(statement, list(chunk))
        inserted += len(result.all())
    return inserted


async def _insert_new(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> int:
    """Any other backend: skip the keys already there (the unique constraint still guards)."""
    keys = [row["idempotency_key"] for row in rows]
    found = await conn.execute(
        select(outbox_table.c.idempotency_key).where(outbox_table.c.idempotency_key.in_(keys))
    )
    existing = set(found.scalars())
    new: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["idempotency_key"] not in existing:
            new.setdefault(row["idempotency_key"], row)
    if new:
        await conn.execute(insert(outbox_table), list(new.values()))
    return len(new)


async def pending(engine: AsyncEngine, limit: int = 100) -> list[PendingMessage]:
    """The oldest ``limit`` undelivered rows, in ``id`` (enqueue) order."""
    table = outbox_table
    async with engine.connect() as conn:
        result = await conn.execute(
            select(
                table.c.id,
                table.c.idempotency_key,
                table.c.topic,
                table.c.payload,
                table.c.qos,
                table.c.retain,
                table.c.attempts,
                table.c.created_at,
            )
            .where(table.c.delivered_at.is_(None))
            .order_by(table.c.id)
            .limit(limit)
        )
        return [PendingMessage(**row) for row in result.mappings()]


@dataclass(frozen=True, slots=True)
class Backlog:
    """The undelivered rows: how many, and when the oldest was enqueued."""

    count: int
    oldest_created_at: datetime | None  # None when nothing waits


async def backlog(engine: AsyncEngine) -> int:
    """How many rows are waiting to be published."""
    return (await backlog_summary(engine)).count


async def backlog_summary(engine: AsyncEngine) -> Backlog:
    """How many rows are waiting to be published, and the oldest one's ``created_at``."""
    table = outbox_table
    async with engine.connect() as conn:
        result = await conn.execute(
            select(func.count(), func.min(table.c.created_at)).where(table.c.delivered_at.is_(None))
        )
        count, oldest = result.one()
        return Backlog(int(count), oldest)


async def mark_delivered(
    engine: AsyncEngine, ids: Sequence[int], at: datetime | None = None
) -> None:
    """The broker acknowledged these rows (PUBACK): they are never published again."""
    when = at or _now()
    async with engine.begin() as conn:
        for chunk in chunks(list(ids)):
            await conn.execute(
                update(outbox_table)
                .where(outbox_table.c.id.in_(chunk), outbox_table.c.delivered_at.is_(None))
                .values(delivered_at=when, attempts=outbox_table.c.attempts + 1)
            )


async def mark_failed(engine: AsyncEngine, ids: Sequence[int], error: str) -> None:
    """A publish of these rows failed: count the attempt and keep the error; they stay pending."""
    async with engine.begin() as conn:
        for chunk in chunks(list(ids)):
            await conn.execute(
                update(outbox_table)
                .where(outbox_table.c.id.in_(chunk), outbox_table.c.delivered_at.is_(None))
                .values(attempts=outbox_table.c.attempts + 1, last_error=error[:MAX_ERROR_CHARS])
            )


async def purge_delivered(engine: AsyncEngine, before: datetime) -> int:
    """Delete rows delivered before ``before`` (housekeeping); how many went."""
    async with engine.begin() as conn:
        result = await conn.execute(
            outbox_table.delete().where(
                outbox_table.c.delivered_at.is_not(None), outbox_table.c.delivered_at < before
            )
        )
        return max(result.rowcount, 0)
