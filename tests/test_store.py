"""The store on SQLite (a temporary file) and PostgreSQL (a throwaway schema per test).

The ``backend`` and ``engine`` fixtures are in ``tests/conftest.py`` (see ``tests/backends.py``:
PostgreSQL is ``postgresql+asyncpg://postgres@127.0.0.1:5432/test`` or
``$CALLMON_TEST_PG_URL``; outside CI an unreachable server skips its tests, with ``CI=true`` it
fails them).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from call_monitor.calls.model import CallRecord, Leg, Transfer
from call_monitor.charter.rules import CallVerdict, Check, TransferVerdict
from call_monitor.config import Settings, StoreSettings
from call_monitor.daemon.callbacks import CallbackService
from call_monitor.directory import Directory
from call_monitor.store import (
    StoreWriter,
    count_calls,
    create_engine,
    load_call,
    spool,
    upgrade,
)
from call_monitor.store import engine as engine_module
from call_monitor.store.accounts import audit
from call_monitor.store.engine import create_reader
from call_monitor.store.models import (
    Base,
    call_legs_table,
    calls_table,
    transfers_table,
    verdicts_table,
)
from call_monitor.store.obligations import list_obligations, obligation_changes_table
from call_monitor.store.outbox import backlog, mark_delivered, outbox_table, pending
from call_monitor.store.schema import head_revision
from call_monitor.store.writer import call_rows
from call_monitor.timefmt import SEOUL
from tests.backends import Backend, postgres_schema

T0 = datetime(2026, 3, 2, 1, 2, 3, tzinfo=UTC)
E0 = T0.timestamp()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def settings(
    batch_size: int = 200,
    flush_interval_seconds: float = 3600.0,
    max_batch_size: int = 2000,
) -> StoreSettings:
    return StoreSettings(
        batch_size=batch_size,
        flush_interval_seconds=flush_interval_seconds,
        max_batch_size=max_batch_size,
    )


# --------------------------------------------------------------------------- calls


STRANGE_NAMES = [
    '=HYPERLINK("http://evil.example","click")',
    "홍길동 😀",
    "Robert'); DROP TABLE calls;--",
    "+cmd|' /C calc'!A0",
    '"quoted" \\ back\\slash \t tab \n newline',
    "%s %(name)s {0} ? :name $1",
    "",
]


def transferred_call() -> tuple[CallRecord, CallVerdict]:
    """An inbound call answered on ring 2, transferred to another department, then a retry.

    201 rang first, then 202, then 201 again (it answered); 202's leg comes before 201's in
    ``legs`` (its channel appeared first), so ``rang`` follows the ring times, not the order.
    """
    record = CallRecord(
        linkedid="1772413323.101",
        started_at=E0,
        direction="inbound",
        caller="01012345678",
        caller_name="홍길동 😀",
        dialed="600",
        ring_started_at=E0 + 0.123456,
        answered_at=E0 + 5.999999,
        answered_by="201",
        legs=[
            Leg("customer", None, answered_at=E0 + 5.999999, ended_at=E0 + 95.5, hangup_cause="16"),
            Leg("staff", "202", rang_at=E0 + 2.500001, ended_at=E0 + 4.75, hangup_cause="19"),
            Leg("staff", "201", rang_at=E0 + 0.123456, ended_at=E0 + 2.5, hangup_cause="19"),
            Leg(
                "staff",
                "201",
                rang_at=E0 + 4.750002,
                answered_at=E0 + 5.999999,
                ended_at=E0 + 36.5,
                hangup_cause="16",
            ),
            Leg(
                "staff",
                "203",
                rang_at=E0 + 31.0,
                answered_at=E0 + 34.000001,
                ended_at=E0 + 60.0,
                hangup_cause="16",
                after_answer=True,
            ),
            Leg("staff", "204", rang_at=E0 + 60.5, ended_at=E0 + 95.5, after_answer=True),
        ],
        ended_at=E0 + 95.5,
        hangup_first="caller",
        talked=True,
        transfers=[
            Transfer(
                kind="attended",
                started_at=E0 + 30.25,
                from_ext="201",
                to_ext="203",
                completed=True,
                target_rang_at=E0 + 31.0,
                target_answered_at=E0 + 34.000001,
                connected_at=E0 + 36.5,
            ),
            Transfer(kind="blind", started_at=E0 + 60.0, from_ext="203", to_ext="204"),
        ],
    )
    verdict = CallVerdict(
        linkedid=record.linkedid,
        definitions_version="2026.1",
        department="민원여권과",
        judged=True,
        rings=2,
        p1_met=True,
        apology_expected=False,
        p7_met=True,
        transfers=(
            TransferVerdict(6.25, 3.000001, True, True),
            TransferVerdict(None, None, None, False),
        ),
        checks=(
            Check("P1", True, "201", "민원여권과"),
            Check("P4", True, "201", "민원여권과"),
            Check("P5", True, "201", "민원여권과"),
            Check("P4", False, "203", "총무과"),
            Check("P7", True, "204", "감사담당관"),
        ),
    )
    return record, verdict


def simple_call(
    linkedid: str, caller_name: str = "", offset: float = 0.0
) -> tuple[CallRecord, CallVerdict]:
    record = CallRecord(
        linkedid=linkedid,
        started_at=E0 + offset,
        direction="inbound",
        caller=f"+82-10-{caller_name[:4]}",
        caller_name=caller_name,
        dialed=caller_name or "700",
        ring_started_at=E0 + offset + 1,
        ended_at=E0 + offset + 31,
        missed=True,
        missed_reason="caller_abandoned",
        legs=[
            Leg("customer", None, ended_at=E0 + offset + 31, hangup_cause="16"),
            Leg("staff", "202", rang_at=E0 + offset + 1, ended_at=E0 + offset + 31),
        ],
    )
    verdict = CallVerdict(
        linkedid=linkedid,
        definitions_version="2026.1",
        department="민원여권과",
        judged=True,
        rings=None,
        p1_met=None,
        apology_expected=None,
        p7_met=None,
        transfers=(),
        checks=(),
    )
    return record, verdict


EXPECTED_TRANSFERRED: dict[str, Any] = {
    "linkedid": "1772413323.101",
    "direction": "inbound",
    "caller": "01012345678",
    "caller_name": "홍길동 😀",
    "dialed": "600",
    "staff": None,
    "department": "민원여권과",
    "started_at": at(0),
    "ring_started_at": at(0.123456),
    "answered_at": at(5.999999),
    "answered_by": "201",
    "conference_at": None,
    "picked_up": False,
    "ended_at": at(95.5),
    "missed": False,
    "missed_reason": None,
    "hangup_first": "caller",
    "talked": True,
    "ring_ended_at": None,
    "after_dial": None,
    "voicemail_left": False,
    "queue_joined_at": None,
    "queue_wait_seconds": None,
    "incomplete": False,
    "ring_seconds": 5.876543,
    "definitions_version": "2026.1",
    "judged": True,
    "rings": 2,
    "p1_met": True,
    "apology_expected": False,
    "p7_met": True,
    "legs": [
        {
            "position": 0,
            "party": "customer",
            "extension": None,
            "rang_at": None,
            "answered_at": at(5.999999),
            "ended_at": at(95.5),
            "hangup_cause": "16",
            "after_answer": False,
            "conference": False,
        },
        {
            "position": 1,
            "party": "staff",
            "extension": "202",
            "rang_at": at(2.500001),
            "answered_at": None,
            "ended_at": at(4.75),
            "hangup_cause": "19",
            "after_answer": False,
            "conference": False,
        },
        {
            "position": 2,
            "party": "staff",
            "extension": "201",
            "rang_at": at(0.123456),
            "answered_at": None,
            "ended_at": at(2.5),
            "hangup_cause": "19",
            "after_answer": False,
            "conference": False,
        },
        {
            "position": 3,
            "party": "staff",
            "extension": "201",
            "rang_at": at(4.750002),
            "answered_at": at(5.999999),
            "ended_at": at(36.5),
            "hangup_cause": "16",
            "after_answer": False,
            "conference": False,
        },
        {
            "position": 4,
            "party": "staff",
            "extension": "203",
            "rang_at": at(31.0),
            "answered_at": at(34.000001),
            "ended_at": at(60.0),
            "hangup_cause": "16",
            "after_answer": True,
            "conference": False,
        },
        {
            "position": 5,
            "party": "staff",
            "extension": "204",
            "rang_at": at(60.5),
            "answered_at": None,
            "ended_at": at(95.5),
            "hangup_cause": None,
            "after_answer": True,
            "conference": False,
        },
    ],
    "rang": ["201", "202"],  # CallRecord.rang: before the answer, by ring time, each once
    "conference": [],
    "transfers": [
        {
            "position": 0,
            "kind": "attended",
            "from_ext": "201",
            "to_ext": "203",
            "external": False,
            "completed": True,
            "started_at": at(30.25),
            "target_rang_at": at(31.0),
            "target_answered_at": at(34.000001),
            "connected_at": at(36.5),
            "wait_seconds": 6.25,
            "target_ring_seconds": 3.000001,
            "other_department": True,
            "p4_met": True,
        },
        {
            "position": 1,
            "kind": "blind",
            "from_ext": "203",
            "to_ext": "204",
            "external": False,
            "completed": False,
            "started_at": at(60.0),
            "target_rang_at": None,
            "target_answered_at": None,
            "connected_at": None,
            "wait_seconds": None,
            "target_ring_seconds": None,
            "other_department": None,
            "p4_met": False,
        },
    ],
    "checks": [
        {
            "clause": "P1",
            "position": 0,
            "definitions_version": "2026.1",
            "met": True,
            "staff": "201",
            "department": "민원여권과",
        },
        {
            "clause": "P4",
            "position": 0,
            "definitions_version": "2026.1",
            "met": True,
            "staff": "201",
            "department": "민원여권과",
        },
        {
            "clause": "P4",
            "position": 1,
            "definitions_version": "2026.1",
            "met": False,
            "staff": "203",
            "department": "총무과",
        },
        {
            "clause": "P5",
            "position": 0,
            "definitions_version": "2026.1",
            "met": True,
            "staff": "201",
            "department": "민원여권과",
        },
        {
            "clause": "P7",
            "position": 0,
            "definitions_version": "2026.1",
            "met": True,
            "staff": "204",
            "department": "감사담당관",
        },
    ],
}


def batch() -> list[tuple[CallRecord, CallVerdict]]:
    calls = [transferred_call()]
    calls += [simple_call(f"1772413400.{i}", name, i) for i, name in enumerate(STRANGE_NAMES)]
    return calls


async def child_counts(engine: AsyncEngine) -> tuple[int, int, int]:
    async with engine.connect() as conn:
        counts = []
        for table in (call_legs_table, transfers_table, verdicts_table):
            result = await conn.execute(select(func.count()).select_from(table))
            counts.append(int(result.scalar_one()))
    return counts[0], counts[1], counts[2]


async def eventually(condition: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while True:
            if await condition():
                return
            await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- migrations


def _schema_state(conn: Connection) -> tuple[set[str], str | None, list[Any]]:
    tables = set(inspect(conn).get_table_names())
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return tables, context.get_current_revision(), compare_metadata(context, Base.metadata)


async def test_migrations_apply_from_empty_and_match_the_models(backend: Backend) -> None:
    if backend.name == "sqlite":
        assert not Path(make_url(backend.url).database or "").parent.exists()
    await backend.migrate()
    await backend.migrate()  # already at head: a no-op
    engine = backend.engine()
    try:
        async with engine.connect() as conn:
            tables, revision, differences = await conn.run_sync(_schema_state)
            if backend.name == "sqlite":
                mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
                assert mode == "wal"
                assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
    finally:
        await engine.dispose()
    # Every table a model declares (the store's and the outbox's), and nothing else.
    assert tables == {"alembic_version", *Base.metadata.tables}
    assert {"calls", "call_legs", "transfers", "verdicts", "outbox"} <= tables
    assert revision == head_revision()
    assert differences == []


# --------------------------------------------------------------------------- writing


async def test_round_trip_is_exact(engine: AsyncEngine) -> None:
    writer = StoreWriter(engine, settings())
    for record, verdict in batch():
        writer.submit(record, verdict)
    assert writer.pending == len(STRANGE_NAMES) + 1
    await writer.flush()
    assert writer.pending == 0

    assert await load_call(engine, "1772413323.101") == EXPECTED_TRANSFERRED
    assert transferred_call()[0].rang == EXPECTED_TRANSFERRED["rang"]  # derived the same way
    for i, name in enumerate(STRANGE_NAMES):
        stored = await load_call(engine, f"1772413400.{i}")
        assert stored is not None
        assert stored["caller_name"] == name
        assert stored["dialed"] == (name or "700")
        assert stored["caller"] == f"+82-10-{name[:4]}"
        assert stored["started_at"] == at(i)
        assert stored["missed_reason"] == "caller_abandoned"
        assert stored["rang"] == ["202"]
        assert stored["legs"] == [
            {
                "position": 0,
                "party": "customer",
                "extension": None,
                "rang_at": None,
                "answered_at": None,
                "ended_at": at(i + 31),
                "hangup_cause": "16",
                "after_answer": False,
                "conference": False,
            },
            {
                "position": 1,
                "party": "staff",
                "extension": "202",
                "rang_at": at(i + 1),
                "answered_at": None,
                "ended_at": at(i + 31),
                "hangup_cause": None,
                "after_answer": False,
                "conference": False,
            },
        ]
        assert stored["transfers"] == []
        assert stored["checks"] == []
    assert await count_calls(engine) == len(STRANGE_NAMES) + 1
    assert await load_call(engine, "no such call") is None
    assert writer.stats.written == len(STRANGE_NAMES) + 1
    assert writer.stats.failures == 0
    await writer.close()


async def test_writing_the_same_calls_twice_keeps_one_of_each(engine: AsyncEngine) -> None:
    first = StoreWriter(engine, settings(3, max_batch_size=3))  # several transactions per flush
    for record, verdict in batch():
        first.submit(record, verdict)
    await first.close()
    counts = await child_counts(engine)
    assert counts == (6 + 2 * len(STRANGE_NAMES), 2, 5)

    # Replaying the same recording: a new writer, the same calls again.
    second = StoreWriter(engine, settings())
    for record, verdict in batch():
        second.submit(record, verdict)
    await second.close()
    assert await count_calls(engine) == len(STRANGE_NAMES) + 1
    assert await child_counts(engine) == counts
    assert await load_call(engine, "1772413323.101") == EXPECTED_TRANSFERRED


async def test_a_rewritten_call_replaces_the_old_one(engine: AsyncEngine) -> None:
    writer = StoreWriter(engine, settings())
    record, verdict = transferred_call()
    writer.submit(record, verdict)
    await writer.flush()

    record.caller_name = "김철수"
    record.legs = [Leg("staff", "205", rang_at=E0 + 1.5, answered_at=E0 + 5.999999)]
    record.transfers = []
    verdict = CallVerdict(
        linkedid=record.linkedid,
        definitions_version="2026.2",
        department="총무과",
        judged=False,
        rings=2,
        p1_met=True,
        apology_expected=False,
        p7_met=True,
        transfers=(),
        checks=(Check("P1", True, "205", "총무과"),),
    )
    writer.submit(record, verdict)
    await writer.close()

    stored = await load_call(engine, record.linkedid)
    assert stored is not None
    assert (stored["caller_name"], stored["department"], stored["judged"]) == (
        "김철수",
        "총무과",
        False,
    )
    assert stored["rang"] == ["205"]
    assert stored["legs"] == [
        {
            "position": 0,
            "party": "staff",
            "extension": "205",
            "rang_at": at(1.5),
            "answered_at": at(5.999999),
            "ended_at": None,
            "hangup_cause": None,
            "after_answer": False,
            "conference": False,
        }
    ]
    assert stored["transfers"] == []
    assert stored["checks"] == [
        {
            "clause": "P1",
            "position": 0,
            "definitions_version": "2026.2",
            "met": True,
            "staff": "205",
            "department": "총무과",
        }
    ]
    assert await child_counts(engine) == (1, 0, 1)


async def test_a_call_resubmitted_before_its_flush_is_written_once(engine: AsyncEngine) -> None:
    writer = StoreWriter(engine, settings())
    record, verdict = simple_call("1772413500.1", "first")
    writer.submit(record, verdict)
    record, verdict = simple_call("1772413500.1", "second")
    writer.submit(record, verdict)
    assert writer.pending == 1
    await writer.close()
    stored = await load_call(engine, "1772413500.1")
    assert stored is not None
    assert stored["caller_name"] == "second"
    assert writer.stats.submitted == 2
    assert writer.stats.written == 1


async def test_close_writes_what_run_has_not(engine: AsyncEngine) -> None:
    writer = StoreWriter(engine, settings(flush_interval_seconds=3600.0))
    runner = asyncio.create_task(writer.run())
    for record, verdict in batch():
        writer.submit(record, verdict)
    await asyncio.sleep(0.05)
    assert await count_calls(engine) == 0  # neither the interval nor the batch size reached
    await writer.close()
    await asyncio.wait_for(runner, 5)
    assert writer.pending == 0
    assert await count_calls(engine) == len(STRANGE_NAMES) + 1
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(*simple_call("late"))


async def test_run_flushes_when_a_batch_is_full_and_on_the_interval(engine: AsyncEngine) -> None:
    writer = StoreWriter(engine, settings(batch_size=2, flush_interval_seconds=3600.0))
    runner = asyncio.create_task(writer.run())
    try:
        writer.submit(*simple_call("a"))
        writer.submit(*simple_call("b"))
        await eventually(lambda: _count_is(engine, 2))
        writer.submit(*simple_call("c"))
        await asyncio.sleep(0.1)
        assert writer.pending == 1  # below batch_size, interval far away
    finally:
        await writer.close()
        await asyncio.wait_for(runner, 5)
    assert await count_calls(engine) == 3

    timed = StoreWriter(engine, settings(batch_size=1000, flush_interval_seconds=0.05))
    runner = asyncio.create_task(timed.run())
    try:
        timed.submit(*simple_call("d"))
        await eventually(lambda: _count_is(engine, 4))
    finally:
        await timed.close()
        await asyncio.wait_for(runner, 5)


async def test_a_store_that_fell_behind_catches_up_in_larger_transactions(
    engine: AsyncEngine,
) -> None:
    writer = StoreWriter(engine, settings(batch_size=10, max_batch_size=1000))
    for record, verdict in many_calls(2500):
        writer.submit(record, verdict)
    await writer.flush()
    assert writer.stats.flushes == 3  # 1000 + 1000 + 500, not 250 transactions of 10
    assert writer.stats.written == 2500
    assert await count_calls(engine) == 2500
    await writer.close()


async def _count_is(engine: AsyncEngine, expected: int) -> bool:
    return await count_calls(engine) == expected


async def test_a_call_the_database_refuses_does_not_hold_back_the_others(
    backend: Backend, engine: AsyncEngine
) -> None:
    writer = StoreWriter(engine, settings())
    bad = [simple_call("bad.null")]
    bad[0][0].caller = None  # type: ignore[assignment]  # NOT NULL: refused everywhere
    if backend.name == "postgresql":
        bad.append(simple_call("bad.nul", "nul\x00byte"))  # PostgreSQL text has no NUL
    good = batch()
    for record, verdict in [good[0], *bad, *good[1:]]:
        writer.submit(record, verdict)
    await writer.flush()
    assert writer.pending == 0
    assert sorted(writer.rejected) == sorted(record.linkedid for record, _ in bad)
    assert writer.stats.rejected == len(bad)
    assert writer.stats.failures == 0
    assert await count_calls(engine) == len(good)
    assert await load_call(engine, "1772413323.101") == EXPECTED_TRANSFERRED
    assert await load_call(engine, "bad.null") is None

    # Fixed and submitted again: written, no longer set aside.
    record, verdict = simple_call("bad.null")
    writer.submit(record, verdict)
    assert "bad.null" not in writer.rejected
    await writer.close()
    assert await count_calls(engine) == len(good) + 1


# --------------------------------------------------------------------------- outages


async def test_sqlite_unreachable_then_back(tmp_path: Path) -> None:
    """The database file's directory vanishes: nothing is lost, writes resume once it is back."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'gone' / 'calls.sqlite3'}"
    engine = create_engine(url)  # creates the directory...
    shutil.rmtree(tmp_path / "gone")  # ...which then disappears: SQLite cannot open the file
    try:
        writer = StoreWriter(
            engine,
            settings(batch_size=2),
            retry_initial_seconds=0.01,
            retry_max_seconds=0.05,
        )
        for record, verdict in batch():
            writer.submit(record, verdict)
        with pytest.raises(Exception, match="unable to open database file"):
            await writer.flush()
        assert writer.pending == len(STRANGE_NAMES) + 1
        assert writer.stats.failures == 1
        assert writer.stats.last_error is not None

        runner = asyncio.create_task(writer.run())
        await eventually(lambda: _failures_at_least(writer, 3))
        assert writer.pending == len(STRANGE_NAMES) + 1
        assert writer.stats.written == 0

        await upgrade(url)  # back: directory and schema
        await eventually(lambda: _pending_is(writer, 0))
        assert writer.stats.consecutive_failures == 0
        await writer.close()
        await asyncio.wait_for(runner, 5)
        assert await count_calls(engine) == len(STRANGE_NAMES) + 1
        assert await load_call(engine, "1772413323.101") == EXPECTED_TRANSFERRED
    finally:
        await engine.dispose()


async def test_close_retries_until_the_database_is_back(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'late' / 'calls.sqlite3'}"
    engine = create_engine(url)
    shutil.rmtree(tmp_path / "late")
    try:
        writer = StoreWriter(engine, settings(), retry_initial_seconds=0.01, retry_max_seconds=0.05)
        writer.submit(*transferred_call())
        with pytest.raises(Exception, match="unable to open database file"):
            await writer.close(give_up_after=0.1)
        assert writer.pending == 1  # kept, not dropped

        async def restore() -> None:
            await asyncio.sleep(0.1)
            await upgrade(url)

        restoring = asyncio.create_task(restore())
        await writer.close(give_up_after=10)
        await restoring
        assert writer.pending == 0
        assert await load_call(engine, "1772413323.101") == EXPECTED_TRANSFERRED
    finally:
        await engine.dispose()


class TcpProxy:
    """Forwards TCP connections to a server while ``up``; otherwise hangs up at once."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port, self.up = host, port, False
        self.listen_port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.listen_port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        upstream: asyncio.StreamWriter | None = None
        try:
            if not self.up:
                return
            up_reader, upstream = await asyncio.open_connection(self.host, self.port)
            self._writers.add(upstream)
            await asyncio.gather(self._pipe(reader, upstream), self._pipe(up_reader, writer))
        finally:
            for stream in (writer, upstream):
                if stream is not None:
                    stream.close()
                    with contextlib.suppress(Exception):
                        await stream.wait_closed()
                    self._writers.discard(stream)
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()


@pytest.mark.postgres
async def test_postgres_unreachable_then_back() -> None:
    async with postgres_schema() as pg:
        await pg.migrate()
        target = make_url(pg.url)
        async with TcpProxy(target.host or "127.0.0.1", target.port or 5432) as proxy:
            url = target.set(port=proxy.listen_port).render_as_string(hide_password=False)
            engine = pg.engine(url)
            try:
                writer = StoreWriter(
                    engine,
                    settings(batch_size=2),
                    retry_initial_seconds=0.01,
                    retry_max_seconds=0.05,
                )
                for record, verdict in batch():
                    writer.submit(record, verdict)
                with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the driver raises
                    await writer.flush()
                assert writer.pending == len(STRANGE_NAMES) + 1
                assert writer.stats.failures == 1

                runner = asyncio.create_task(writer.run())
                await eventually(lambda: _failures_at_least(writer, 3))
                assert writer.stats.written == 0

                proxy.up = True
                await eventually(lambda: _pending_is(writer, 0))
                await writer.close()
                await asyncio.wait_for(runner, 5)
                assert await count_calls(engine) == len(STRANGE_NAMES) + 1
                assert await load_call(engine, "1772413323.101") == EXPECTED_TRANSFERRED
            finally:
                await engine.dispose()


async def _failures_at_least(writer: StoreWriter, count: int) -> bool:
    return writer.stats.failures >= count


async def _pending_is(writer: StoreWriter, count: int) -> bool:
    return writer.pending == count


# --------------------------------------------------------------------------- queue rules


def test_submit_rejects_a_verdict_of_another_call() -> None:
    writer = StoreWriter(create_engine("sqlite+aiosqlite://"), settings())
    record, _ = simple_call("one")
    _, verdict = simple_call("two")
    with pytest.raises(ValueError, match="verdict of 'two'"):
        writer.submit(record, verdict)
    assert writer.pending == 0


def test_the_queue_is_bounded_and_counts_what_it_drops(caplog: pytest.LogCaptureFixture) -> None:
    writer = StoreWriter(create_engine("sqlite+aiosqlite://"), settings(), max_pending=2)
    for name in ("a", "b", "c"):
        writer.submit(*simple_call(name))
    assert writer.pending == 2
    assert writer.stats.dropped == 1
    assert "'a' dropped" in caplog.text


# --------------------------------------------------------------------------- one connection


def many_calls(count: int) -> list[tuple[CallRecord, CallVerdict]]:
    """``count`` distinct calls; every tenth the transferred one (rows in all four tables)."""
    calls = []
    for n in range(count):
        if n % 10 == 0:
            record, verdict = transferred_call()
            linkedid = f"1772500000.{n}"
            calls.append(
                (
                    dataclasses.replace(record, linkedid=linkedid),
                    dataclasses.replace(verdict, linkedid=linkedid),
                )
            )
        else:
            calls.append(simple_call(f"1772500000.{n}", f"caller {n}", n))
    return calls


def old_pool() -> dict[str, Any]:
    """The pool of a SQLite file engine before it was one connection: SQLAlchemy's default
    (five connections and ten more, each with its own aiosqlite thread)."""
    return {"poolclass": AsyncAdaptedQueuePool}


OLD_POOL_CONTENDS = pytest.mark.xfail(
    raises=AssertionError,
    strict=True,
    reason="several connections: a writer waits on SQLite's lock, and fails",
)


@pytest.fixture
async def sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated SQLite file whose connections do NOT wait for SQLite's write lock (a busy
    timeout of 0, set after the migration): any two transactions that meet fail at once."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'one' / 'calls.sqlite3'}"
    await upgrade(url)
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 0)
    return url


@pytest.mark.parametrize("pool", [{}, pytest.param(old_pool(), marks=OLD_POOL_CONTENDS)])
async def test_a_write_waits_for_the_connection_not_for_sqlites_lock(
    sqlite_url: str, pool: dict[str, Any]
) -> None:
    engine = create_engine(sqlite_url, **pool)
    try:
        writer = StoreWriter(engine, settings())
        for record, verdict in batch():
            writer.submit(record, verdict)
        async with engine.begin() as conn:  # someone else's write transaction, held
            await conn.execute(calls_table.insert(), [call_rows(*simple_call("held")).call])
            flushing = asyncio.create_task(writer.flush())
            await asyncio.sleep(0.3)
            assert not flushing.done(), flushing.exception()  # waiting, not failed
        await asyncio.wait_for(flushing, 10)
        assert writer.stats.failures == 0
        assert await count_calls(engine) == len(batch()) + 1
    finally:
        await engine.dispose()


async def test_sqlite_writers_and_readers_at_once_never_contend(sqlite_url: str) -> None:
    """The daemon's writers on one engine, as ``service.py`` wires them, flat out: calls
    (``StoreWriter``), memos (``CallbackService``: obligations, history, outbox rows), and a
    reader that also marks outbox rows delivered (as the MQTT publisher does). Not one
    write may fail (with no busy timeout, any two transactions that met would), and every
    row lands."""
    engine = create_engine(sqlite_url)
    settings_ = Settings()
    writer = StoreWriter(
        engine,
        settings(batch_size=50, flush_interval_seconds=0.01, max_batch_size=50),
        retry_initial_seconds=0.01,
        retry_max_seconds=0.05,
    )
    service = CallbackService(
        settings_,
        engine,
        Directory(settings_.directory),
        clock=lambda: datetime(2026, 11, 30, 10, 0, tzinfo=SEOUL),  # a Monday morning
        retry_initial_seconds=0.01,
        retry_max_seconds=0.05,
    )
    calls, memos = many_calls(3000), 1000
    stop = asyncio.Event()
    reads = {"done": 0, "failed": 0}

    async def read(*, deliver: bool) -> None:
        while not stop.is_set():
            try:
                await count_calls(engine)
                await list_obligations(engine, staff="201", limit=20)
                rows = await pending(engine, 20)
                if rows and deliver:
                    await mark_delivered(engine, [row.id for row in rows])
                reads["done"] += 1
            except Exception:
                reads["failed"] += 1
                raise
            await asyncio.sleep(0)

    async def feed() -> None:
        for n, (record, verdict) in enumerate(calls):
            writer.submit(record, verdict)
            if n % 3 == 0 and n // 3 < memos:
                number = f"010-7000-{n // 3:04d}"
                await service.memo(number=number, owner="201", taken_by="202", wait_seconds=0)
            if n % 10 == 0:
                await asyncio.sleep(0)

    try:
        tasks = [
            asyncio.create_task(writer.run()),
            asyncio.create_task(service.run_writer()),
            asyncio.create_task(read(deliver=True)),
            asyncio.create_task(read(deliver=False)),
        ]
        try:
            async with asyncio.timeout(120):
                await feed()
                await writer.close(give_up_after=5)
                await service.close(give_up_after=5)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        assert (writer.stats.failures, service.stats.failures, reads["failed"]) == (0, 0, 0)
        assert writer.stats.written == len(calls)
        assert service.stats.written == memos
        assert reads["done"] > 10
        assert await count_calls(engine) == len(calls)
        assert await child_counts(engine) == (
            sum(len(record.legs) for record, _ in calls),
            sum(len(record.transfers) for record, _ in calls),
            sum(len(verdict.checks) for _, verdict in calls),
        )
        assert len(await list_obligations(engine, limit=None)) == memos
        undelivered = await backlog(engine)  # not inside the connection below: one at a time
        async with engine.connect() as conn:
            changes = await conn.execute(select(func.count()).select_from(obligation_changes_table))
            outbox = await conn.execute(select(func.count()).select_from(outbox_table))
            delivered = await conn.execute(
                select(func.count()).where(outbox_table.c.delivered_at.is_not(None))
            )
            assert changes.scalar_one() == memos
            assert outbox.scalar_one() == delivered.scalar_one() + undelivered >= memos
    finally:
        await engine.dispose()


# Long enough for a cancellation to land while SQLite runs it (half a second or so).
SLOW_QUERY = text(
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000000) "
    "SELECT count(*) FROM n"
)


async def test_a_transaction_cancelled_mid_statement_leaves_no_lock_behind(
    sqlite_url: str,
) -> None:
    """A task cancelled while SQLite runs a statement of its write transaction: SQLAlchemy
    invalidates the connection (the pool's one slot is free again) and the engine rolls it
    back before it is closed, so the next writer gets the database at once, not "database
    is locked" until the abandoned connection is garbage-collected."""
    engine = create_engine(sqlite_url)
    try:
        running = asyncio.Event()

        async def cancelled_transaction() -> None:
            async with engine.begin() as conn:
                await conn.execute(calls_table.insert(), [call_rows(*simple_call("gone")).call])
                running.set()
                await conn.execute(SLOW_QUERY)

        task = asyncio.create_task(cancelled_transaction())
        await running.wait()
        await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        writer = StoreWriter(engine, settings())
        for record, verdict in batch():
            writer.submit(record, verdict)
        async with asyncio.timeout(10):  # not the pool's 60 s
            await writer.flush()  # with no busy timeout: at once, or "database is locked"
        assert writer.stats.failures == 0
        assert await count_calls(engine) == len(batch())  # "gone" was rolled back
    finally:
        await engine.dispose()


async def test_calls_the_store_did_not_take_at_a_stop_are_spooled_and_written_later(
    tmp_path: Path,
) -> None:
    """Issue 14, item 6: a stop while the database is down kept nothing ("NOT written");
    the queue goes to a spool file, written at the next start, byte for byte the same."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'down' / 'calls.sqlite3'}"
    engine = create_engine(url)
    shutil.rmtree(tmp_path / "down")  # the database unreachable at the stop
    path = tmp_path / "calls.spool"
    try:
        writer = StoreWriter(engine, settings(), retry_initial_seconds=0.01, retry_max_seconds=0.05)
        for record, verdict in batch():
            writer.submit(record, verdict)
        with pytest.raises(Exception, match="unable to open database file"):
            await writer.close(give_up_after=0.1)
        spool.save(path, spool.Spooled(writer.unwritten(), []))
        spool.save(path, spool.Spooled([], []))  # a second stop adds to it, loses nothing
    finally:
        await engine.dispose()

    await upgrade(url)  # the next start: the database is back
    engine = create_engine(url)
    try:
        spooled = spool.load(path)
        assert spooled is not None
        assert len(spooled.calls) == len(batch())
        again = StoreWriter(engine, settings())
        again.requeue(spooled.calls)
        await again.flush()
        spool.remove(path)
        assert await count_calls(engine) == len(batch())
        assert await load_call(engine, "1772413323.101") == EXPECTED_TRANSFERRED
        assert spool.load(path) is None
    finally:
        await engine.dispose()


@pytest.mark.parametrize("how", ["deleted", "replaced"])
async def test_a_sqlite_file_deleted_or_replaced_while_open_takes_no_writes(
    tmp_path: Path, how: str
) -> None:
    """Issue 14, item 3: with the database's directory removed mid-run, 392 more calls were
    "written" into the deleted file (no failure, /readyz 200) and gone at the stop. The
    writes now fail, counted, and the calls stay queued."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'db' / 'calls.sqlite3'}"
    await upgrade(url)
    engine = create_engine(url)
    try:
        writer = StoreWriter(engine, settings(), retry_initial_seconds=0.01, retry_max_seconds=0.05)
        first, *rest = batch()
        writer.submit(*first)
        await writer.flush()  # the file noted
        shutil.rmtree(tmp_path / "db")
        if how == "replaced":
            await upgrade(url)  # a new, empty database where ours was
        for record, verdict in rest:
            writer.submit(record, verdict)
        with pytest.raises(engine_module.StoreFileGone, match=how):
            await writer.flush()
        assert writer.pending == len(rest)
        assert writer.stats.consecutive_failures == 1
    finally:
        await engine.dispose()


async def test_the_pages_reader_reads_the_store_outside_any_transaction(
    backend: Backend, engine: AsyncEngine
) -> None:
    """PostgreSQL: a pool of its own in autocommit (no BEGIN and ROLLBACK round trips around
    each page's read), seeing what the store committed; SQLite: the store's one engine."""
    reader = create_reader(engine, connect_args=backend.connect_args)
    if backend.name == "sqlite":
        assert reader is engine
        return
    try:
        await audit(engine, "login_ok", actor="kim", target="kim", details={})
        async with reader.connect() as conn:
            seen = (await conn.execute(text("SELECT count(*) FROM audit_log"))).scalar_one()
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            assert not raw.is_in_transaction()
        assert seen == 1
        async with engine.connect() as conn:  # the store's engine, for contrast
            await conn.execute(text("SELECT 1"))
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            assert raw.is_in_transaction()
    finally:
        await reader.dispose()
