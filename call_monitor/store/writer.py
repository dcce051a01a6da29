"""Batched, idempotent, never-dropping writes of finished calls and their verdicts.

:meth:`StoreWriter.submit` is synchronous and cheap: it turns the call into rows at once (a
snapshot, immune to later changes of the record) and queues them by ``linkedid``; a call
submitted again before it is written replaces the queued one. :meth:`StoreWriter.run` writes
what is queued every ``flush_interval_seconds``, or as soon as ``batch_size`` calls are, up to
``max_batch_size`` calls per transaction: a writer that fell behind (a database slower than the
calls, for a while) catches up in larger transactions, which cost fewer round trips per call. A
call is written as an upsert (``INSERT ... ON CONFLICT (linkedid) DO UPDATE`` on SQLite and
PostgreSQL) after deleting its child rows, so writing the same call twice leaves one call. On
SQLite a batch goes in a few multi-row statements (``store/sqlite_batch.py``). A failed batch
stays queued (the failure is logged with its traceback and counted in :attr:`StoreWriter.stats`)
and is retried with exponential backoff; :meth:`StoreWriter.close` writes what is left. The one
exception: a call the database refuses for its data (an integrity or data error, say a NUL
character in PostgreSQL text) would block every later write, so the batch is written in halves
until that call is alone (``retry.write_or_set_aside``); refused alone it is set aside in
:attr:`StoreWriter.rejected`, logged with its rows and counted, while the rest goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, delete, insert
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.base import ReadOnlyColumnCollection
from sqlalchemy.sql.elements import KeyedColumnElement

from call_monitor.backoff import Backoff
from call_monitor.calls.model import LEG, CallRecord
from call_monitor.charter.judged import JUDGED_CALL, JUDGED_TRANSFER, check_verdict
from call_monitor.charter.rules import CHECK, CallVerdict, Check
from call_monitor.config import StoreSettings
from call_monitor.store import sqlite_batch
from call_monitor.store.chunks import chunks
from call_monitor.store.engine import create_engine
from call_monitor.store.models import (
    CALLS,
    CHILD_TABLES,
    LEGS,
    TRANSFERS,
    VERDICTS,
    call_legs_table,
    calls_table,
    from_epoch,
    transfers_table,
    verdicts_table,
)
from call_monitor.store.reading import count_calls, load_call
from call_monitor.store.retry import (
    WriteQueue,
    write_or_set_aside,
    write_until_stopped,
    write_until_written,
)
from call_monitor.store.rows import Row

__all__ = ["StoreGauges", "StoreWriter", "WriterStats", "count_calls", "create_engine", "load_call"]

log = logging.getLogger(__name__)

MAX_REJECTED = 1000


@dataclass(slots=True)
class WriterStats:
    """Counters of a :class:`StoreWriter` (for logs and metrics)."""

    submitted: int = 0  # submit() calls
    written: int = 0  # calls written (a rewrite of the same call counts again)
    flushes: int = 0  # batches committed
    failures: int = 0  # batches that failed (and stayed queued)
    consecutive_failures: int = 0
    dropped: int = 0  # calls evicted because the queue passed max_pending
    rejected: int = 0  # calls the database refused (bad data): set aside, not retried
    last_error: str | None = None
    last_flush_monotonic: float | None = None


@dataclass(frozen=True, slots=True)
class StoreGauges:
    """What the metrics read at scrape time (``metrics.families.StoreStatsView``)."""

    pending: int  # calls queued, not yet written
    failures: int
    dropped: int
    rejected: int


@dataclass(frozen=True, slots=True)
class _CallRows:
    call: Row
    legs: list[Row] = field(default_factory=list)
    transfers: list[Row] = field(default_factory=list)
    verdicts: list[Row] = field(default_factory=list)


# The rows of a call's records (TableMap.compile: generated from the tables' maps and the
# judged call's shapes, the times as aware UTC datetimes).
_CALL_ROW = CALLS.compile(*JUDGED_CALL, time=from_epoch)
_LEG_ROW = LEGS.compile(LEG, time=from_epoch)
_TRANSFER_ROW = TRANSFERS.compile(*JUDGED_TRANSFER, time=from_epoch)
_VERDICT_ROW = VERDICTS.compile(CHECK, time=from_epoch)


def call_rows(record: CallRecord, verdict: CallVerdict) -> _CallRows:
    """The rows of one call (``calls``, ``call_legs``, ``transfers`` and ``verdicts``): its
    mapping (``judged_values``) in the tables' columns, times as aware UTC datetimes.

    Built by the generated functions above, not from ``judged_values``: ``submit`` runs this
    on the event loop for every call (the tests check that the rows are the same)."""
    check_verdict(record, verdict)
    linkedid = record.linkedid
    legs = [
        _LEG_ROW(leg, linkedid=linkedid, position=position)
        for position, leg in enumerate(record.legs)
    ]
    transfers = [
        _TRANSFER_ROW(transfer, judged, linkedid=linkedid, position=position)
        for position, (transfer, judged) in enumerate(
            zip(record.transfers, verdict.transfers, strict=True)
        )
    ]
    definitions_version = verdict.definitions_version
    verdicts = [
        _VERDICT_ROW(
            check,
            linkedid=linkedid,
            position=position,
            definitions_version=definitions_version,
        )
        for check, position in zip(verdict.checks, clause_ordinals(verdict.checks), strict=True)
    ]
    return _CallRows(_CALL_ROW(record, verdict), legs, transfers, verdicts)


def clause_ordinals(checks: Sequence[Check]) -> list[int]:
    """Each check's ordinal among the checks of its clause (the verdict row's ``position``)."""
    seen: dict[str, int] = {}
    ordinals: list[int] = []
    for check in checks:
        ordinal = seen.get(check.clause, 0)
        seen[check.clause] = ordinal + 1
        ordinals.append(ordinal)
    return ordinals


class StoreWriter:
    """Queues finished calls and writes them in batches; see the module docstring.

    ``max_pending`` bounds the queue (default: the larger of 100 000 and 100 batches): past
    it, the oldest queued call is evicted, logged and counted in ``stats.dropped``. Only a
    database down for very long gets there; a failed batch is otherwise never dropped.
    Retries wait at most ``retry_initial_seconds`` (default: the flush interval, at least
    0.1 s), a window doubled after each failure up to ``retry_max_seconds`` (full jitter).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        settings: StoreSettings,
        *,
        max_pending: int | None = None,
        retry_initial_seconds: float | None = None,
        retry_max_seconds: float = 30.0,
    ) -> None:
        self._engine = engine
        self._batch_size = settings.batch_size
        self._max_batch_size = settings.max_batch_size
        self._interval = max(0.01, settings.flush_interval_seconds)
        self._max_pending = (
            max_pending if max_pending is not None else max(100_000, 100 * self._batch_size)
        )
        if self._max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        retry_initial = (
            retry_initial_seconds if retry_initial_seconds is not None else max(0.1, self._interval)
        )
        self._backoff = Backoff(retry_initial, max(retry_max_seconds, retry_initial))
        self._queue = WriteQueue(log, "store", "calls", lambda: len(self._pending))
        self._pending: dict[str, _CallRows] = {}
        self._rejected: dict[str, _CallRows] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()  # a batch is full, or closing
        self._stop = asyncio.Event()  # closing
        self._closed = False
        self.stats = WriterStats()

    @property
    def pending(self) -> int:
        """Calls queued and not yet written."""
        return len(self._pending)

    def gauges(self) -> StoreGauges:
        """The queue's length and the failure counts, for a scrape."""
        stats = self.stats
        return StoreGauges(len(self._pending), stats.failures, stats.dropped, stats.rejected)

    @property
    def rejected(self) -> list[str]:
        """Linkedids of the calls the database refused (newest last, at most 1000)."""
        return list(self._rejected)

    @property
    def closed(self) -> bool:
        return self._closed

    def unwritten(self) -> list[_CallRows]:
        """The rows of the calls queued and not written (for the spool file at a stop)."""
        return list(self._pending.values())

    def requeue(self, calls: Sequence[_CallRows]) -> None:
        """Queue calls :meth:`unwritten` gave (a spool file's), unless a newer version of
        one is queued already."""
        for rows in calls:
            self._pending.setdefault(rows.call["linkedid"], rows)

    def submit(self, record: CallRecord, verdict: CallVerdict) -> None:
        """Queue a finished call and its verdict. Never blocks, never awaits.

        Raises ``ValueError`` if the verdict is not the record's, ``RuntimeError`` after
        :meth:`close`.
        """
        if self._closed:
            raise RuntimeError(f"store writer closed; call {record.linkedid!r} not queued")
        rows = call_rows(record, verdict)
        # Re-queue at the end: the newest version of a call is the one written.
        self._pending.pop(record.linkedid, None)
        self._rejected.pop(record.linkedid, None)
        self._pending[record.linkedid] = rows
        self.stats.submitted += 1
        while len(self._pending) > self._max_pending:
            evicted = next(iter(self._pending))
            del self._pending[evicted]
            self.stats.dropped += 1
            log.error(
                "store queue full (%d calls): call %r dropped without being written",
                self._max_pending,
                evicted,
            )
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    async def flush(self) -> None:
        """Write every call queued so far, ``max_batch_size`` calls per transaction at most.

        On failure the unwritten calls stay queued, the failure is logged and counted, and
        the exception propagates.
        """
        async with self._lock:
            keys = list(self._pending)
            for start in range(0, len(keys), self._max_batch_size):
                batch = [
                    (key, self._pending[key])
                    for key in keys[start : start + self._max_batch_size]
                    if key in self._pending
                ]
                if batch:
                    await self._flush_batch(batch)

    async def _flush_batch(self, batch: list[tuple[str, _CallRows]]) -> None:
        await write_or_set_aside(
            batch,
            self._write_items,
            self._queue,
            written=self._written,
            refused=lambda item, exc: self._reject(*item, exc),
            failed=self._count_failure,
        )

    async def _write_items(self, batch: Sequence[tuple[str, _CallRows]]) -> None:
        await self._write(self._engine, [rows for _, rows in batch])

    def _written(self, batch: Sequence[tuple[str, _CallRows]]) -> None:
        for key, rows in batch:
            # A newer version submitted meanwhile stays queued.
            if self._pending.get(key) is rows:
                del self._pending[key]
        self.stats.written += len(batch)
        self.stats.flushes += 1
        self.stats.consecutive_failures = 0
        self.stats.last_flush_monotonic = time.monotonic()

    def _count_failure(self, exc: Exception, batch: Sequence[tuple[str, _CallRows]]) -> None:
        self.stats.failures += 1
        self.stats.consecutive_failures += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        log.error(
            "store write of %d calls failed (attempt %d in a row); %d calls kept queued",
            len(batch),
            self.stats.consecutive_failures,
            len(self._pending),
            exc_info=exc,
        )

    def _reject(self, key: str, rows: _CallRows, exc: Exception) -> None:
        self.stats.rejected += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        if self._pending.get(key) is not rows:
            # Resubmitted meanwhile: the newer version gets its own chance.
            log.error("store refused call %r; a newer version is queued", key, exc_info=exc)
            return
        del self._pending[key]
        self._rejected[key] = rows
        while len(self._rejected) > MAX_REJECTED:
            del self._rejected[next(iter(self._rejected))]
        log.error("store refused call %r: set aside, not retried", key, exc_info=exc)

    @staticmethod
    async def _write(engine: AsyncEngine, calls: Sequence[_CallRows]) -> None:
        linkedids = [rows.call["linkedid"] for rows in calls]
        children = (
            (call_legs_table, [row for rows in calls for row in rows.legs]),
            (transfers_table, [row for rows in calls for row in rows.transfers]),
            (verdicts_table, [row for rows in calls for row in rows.verdicts]),
        )
        async with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                await _write_sqlite(conn, linkedids, [rows.call for rows in calls], children)
                return
            for chunk in chunks(linkedids):
                for table in CHILD_TABLES:
                    await conn.execute(delete(table).where(table.c.linkedid.in_(chunk)))
            await _upsert_calls(conn, [rows.call for rows in calls])
            for table, rows_of in children:
                if rows_of:
                    await conn.execute(insert(table), rows_of)

    async def run(self) -> None:
        """Write batches until :meth:`close`; failed batches are retried with backoff.

        Run it as a task; it returns once :meth:`close` is called (``close`` writes the
        rest). Stop it with :meth:`close`, not by cancelling it: an interrupted batch stays
        queued, but its transaction is rolled back only once the statement the database
        thread is running ends, and the final flush then waits for it.
        """
        await write_until_stopped(
            self.flush,
            self._queue,
            self._backoff,
            stop=self._stop,
            wake=self._wake,
            due=lambda: len(self._pending) >= self._batch_size,
            interval=self._interval,
        )

    async def close(self, give_up_after: float | None = 30.0) -> None:
        """Stop :meth:`run` and write everything queued, retrying for ``give_up_after`` seconds.

        If the database stays unreachable the last error propagates and the calls stay in
        the queue (``pending``); a later :meth:`flush` can still write them.
        """
        self._closed = True
        self._stop.set()
        self._wake.set()
        await write_until_written(
            self.flush, self._queue, self._backoff, give_up_after=give_up_after
        )


async def _write_sqlite(
    conn: AsyncConnection,
    linkedids: list[str],
    calls: list[Row],
    children: Sequence[tuple[Table, list[Row]]],
) -> None:
    """The batch in a few multi-row statements (why: ``store/sqlite_batch.py``)."""
    for table in CHILD_TABLES:
        await sqlite_batch.delete_where_in(conn, table, "linkedid", linkedids)
    await sqlite_batch.insert_rows(conn, calls_table, calls, on_conflict=("linkedid",), update=True)
    for table, rows in children:
        await sqlite_batch.insert_rows(conn, table, rows)


async def _upsert_calls(conn: AsyncConnection, rows: list[Row]) -> None:
    if conn.dialect.name == "postgresql":
        pg = postgresql.insert(calls_table)
        await conn.execute(
            pg.on_conflict_do_update(index_elements=["linkedid"], set_=_updates(pg.excluded)),
            rows,
        )
    else:
        # Any other backend: replace the rows (one transaction: no window without them).
        for chunk in chunks([row["linkedid"] for row in rows]):
            await conn.execute(delete(calls_table).where(calls_table.c.linkedid.in_(chunk)))
        await conn.execute(insert(calls_table), rows)


def _updates(excluded: ReadOnlyColumnCollection[str, KeyedColumnElement[Any]]) -> Row:
    """``SET column = excluded.column`` for every column but the key."""
    return {
        column.name: excluded[column.name]
        for column in calls_table.columns
        if not column.primary_key
    }
