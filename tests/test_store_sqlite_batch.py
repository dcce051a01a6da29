"""SQLite's multi-row batch statements (``store/sqlite_batch.py``) write what Core would.

The reference is SQLAlchemy Core itself: the same rows inserted with ``insert(table)``
(executemany, the columns' types applied by SQLAlchemy). Both databases are then read raw
(``SELECT *`` through the driver, no type processing), so a stored value that differs in any
way (a datetime's text, a boolean's integer, a NULL) fails the comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, insert
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from call_monitor.alerts.messages import OutboxMessage
from call_monitor.calls.model import CallRecord
from call_monitor.charter.rules import CallVerdict
from call_monitor.config import StoreSettings
from call_monitor.store import (
    StoreWriter,
    count_calls,
    create_engine,
    load_call,
    sqlite_batch,
    upgrade,
)
from call_monitor.store.models import (
    call_legs_table,
    calls_table,
    transfers_table,
    verdicts_table,
)
from call_monitor.store.outbox import outbox_rows, outbox_table
from call_monitor.store.writer import call_rows
from tests.test_store import EXPECTED_TRANSFERRED, batch, many_calls

TABLES = (calls_table, call_legs_table, transfers_table, verdicts_table)
Calls = Sequence[tuple[CallRecord, CallVerdict]]


async def migrated(tmp_path: Path, name: str) -> AsyncEngine:
    url = f"sqlite+aiosqlite:///{tmp_path / name}"
    await upgrade(url)
    return create_engine(url)


async def write_with_core(engine: AsyncEngine, calls: Calls) -> None:
    rows = [call_rows(record, verdict) for record, verdict in calls]
    async with engine.begin() as conn:
        await conn.execute(insert(calls_table), [r.call for r in rows])
        for table, children in (
            (call_legs_table, [row for r in rows for row in r.legs]),
            (transfers_table, [row for r in rows for row in r.transfers]),
            (verdicts_table, [row for r in rows for row in r.verdicts]),
        ):
            if children:
                await conn.execute(insert(table), children)


async def raw_rows(engine: AsyncEngine, table: Table) -> list[tuple[Any, ...]]:
    keys = ", ".join(column.name for column in table.primary_key.columns)
    async with engine.connect() as conn:
        result = await conn.exec_driver_sql(f"SELECT * FROM {table.name} ORDER BY {keys}")
        return [tuple(row) for row in result]


async def write_with_writer(engine: AsyncEngine, calls: Calls, settings: StoreSettings) -> None:
    writer = StoreWriter(engine, settings)
    for record, verdict in calls:
        writer.submit(record, verdict)
    await writer.close()
    assert writer.stats.failures == 0
    assert writer.rejected == []


@pytest.mark.parametrize(
    "max_parameters",
    [sqlite_batch.MAX_PARAMETERS, 40],  # SQLite's limit; one forcing a statement per few rows
)
async def test_the_batch_statements_store_exactly_what_core_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_parameters: int
) -> None:
    monkeypatch.setattr(sqlite_batch, "MAX_PARAMETERS", max_parameters)
    calls = [*batch(), *many_calls(60)]
    core = await migrated(tmp_path, "core.sqlite3")
    batched = await migrated(tmp_path, "batched.sqlite3")
    try:
        await write_with_core(core, calls)
        await write_with_writer(batched, calls, StoreSettings())
        for table in TABLES:
            expected = await raw_rows(core, table)
            assert expected, table.name
            assert await raw_rows(batched, table) == expected, table.name
        assert await load_call(batched, "1772413323.101") == EXPECTED_TRANSFERRED
    finally:
        await core.dispose()
        await batched.dispose()


async def test_a_rewrite_in_batch_statements_replaces_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deletes and the upsert, split over many statements, still replace each call whole."""
    monkeypatch.setattr(sqlite_batch, "MAX_PARAMETERS", 30)  # a DELETE per 30 linkedids
    calls = many_calls(100)
    engine = await migrated(tmp_path, "rewrite.sqlite3")
    reference = await migrated(tmp_path, "reference.sqlite3")
    try:
        await write_with_writer(engine, calls, StoreSettings())
        # Every call again, and the transferred ones changed: one row fewer in each table.
        changed = []
        for record, verdict in calls:
            if record.transfers:
                record.caller_name = "다시 쓴 이름"
                record.legs = record.legs[:-1]
            changed.append((record, verdict))
        await write_with_writer(engine, changed, StoreSettings())
        await write_with_core(reference, changed)
        assert await count_calls(engine) == len(calls)
        for table in TABLES:
            assert await raw_rows(engine, table) == await raw_rows(reference, table), table.name
    finally:
        await engine.dispose()
        await reference.dispose()


async def test_on_conflict_do_nothing_skips_taken_keys_and_counts_what_it_inserts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outbox's insert (an autoincrement id left out, a unique key) against Core's."""
    monkeypatch.setattr(sqlite_batch, "MAX_PARAMETERS", 50)  # several statements
    at = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    messages = [
        OutboxMessage(f"key-{n % 25}", f"callmon/v1/staff/{n}", f'{{"n": {n}, "name": "=1+2"}}')
        for n in range(40)  # keys 0..24, then 0..14 again
    ]
    rows = outbox_rows(messages, at)
    batched = await migrated(tmp_path, "batched.sqlite3")
    core = await migrated(tmp_path, "core.sqlite3")
    try:
        async with batched.begin() as conn:
            inserted = await sqlite_batch.insert_rows(
                conn, outbox_table, rows, on_conflict=("idempotency_key",)
            )
            again = await sqlite_batch.insert_rows(
                conn, outbox_table, rows[:10], on_conflict=("idempotency_key",)
            )
        assert (inserted, again) == (25, 0)
        async with core.begin() as conn:
            for row in rows:
                statement = sqlite.insert(outbox_table).on_conflict_do_nothing(
                    index_elements=["idempotency_key"]
                )
                await conn.execute(statement, [row])
        assert await raw_rows(batched, outbox_table) == await raw_rows(core, outbox_table)
    finally:
        await batched.dispose()
        await core.dispose()


async def test_rows_must_match_the_table() -> None:
    engine = create_engine("sqlite+aiosqlite://")
    try:
        async with engine.begin() as conn:
            with pytest.raises(KeyError, match="no column nope"):
                await sqlite_batch.insert_rows(conn, outbox_table, [{"nope": 1}])
            with pytest.raises(ValueError, match="columns"):
                await sqlite_batch.insert_rows(
                    conn, outbox_table, [{"topic": "a"}, {"topic": "b", "payload": "c"}]
                )
            with pytest.raises(ValueError, match="conflict columns"):
                await sqlite_batch.insert_rows(
                    conn, outbox_table, [{"topic": "a"}], on_conflict=("idempotency_key",)
                )
    finally:
        await engine.dispose()
