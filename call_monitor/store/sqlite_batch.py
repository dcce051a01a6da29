"""Many rows in few statements, for SQLite: a batch of calls in about seven steps.

Used on SQLite by the store writer (calls and their children), the callback service
(obligations and their history) and the outbox; PostgreSQL keeps SQLAlchemy Core, whose
asyncpg driver has no thread to hand the GIL to.

Why: Python's ``sqlite3`` runs every step of a statement with the GIL released and must
take it back after each one, so an ``executemany`` of N rows asks for the GIL N times. The
store's aiosqlite thread gets it from an event loop busy in Python only after a switch
interval (5 ms) per request: a batch of 200 calls (~2,400 rows over four tables) took ~1.4 s
while the pipeline ran flat out, and the store fell behind. One multi-row ``VALUES`` statement
per table (as many rows as SQLite's bound-parameter limit allows) asks once per statement.

The statement text is built here rather than compiled by SQLAlchemy: compiling a
2,000-row ``insert().values([...])`` costs ~100 ms of the event loop's time, against a
string join of fixed placeholders. The values still go through each column's own bind
processor (what SQLAlchemy applies to the same rows, ``UtcDateTime`` included), and the
tests compare the stored rows with those the Core statements write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from call_monitor.store.chunks import chunks

Row = dict[str, Any]
Processor = Callable[[Any], Any]


def _parameter_limit(cap: int = 32_766) -> int:
    """Bound parameters a statement may take, as the linked SQLite was built (its
    SQLITE_MAX_VARIABLE_NUMBER: 32,766 by default since 3.32, 999 before, 250,000 in
    Debian's), and its text at most SQLITE_MAX_SQL_LENGTH (at most 4 characters a parameter
    here); at most ``cap``, which keeps each statement's preparation small."""
    with closing(sqlite3.connect(":memory:")) as probe:
        variables = probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        text = probe.getlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH)
    return max(1, min(cap, variables, (text - 10_000) // 4))


MAX_PARAMETERS = _parameter_limit()


@dataclass(frozen=True, slots=True)
class _Shape:
    """Columns of a table as the statements need them: quoted names, bind processors."""

    table: str
    columns: tuple[str, ...]
    quoted: dict[str, str]
    processors: tuple[Processor | None, ...]

    @property
    def rows_per_statement(self) -> int:
        return max(1, MAX_PARAMETERS // len(self.columns))


@lru_cache(maxsize=64)
def _shape(table: Table, dialect: Dialect, columns: tuple[str, ...]) -> _Shape:
    unknown = [name for name in columns if name not in table.c]
    if unknown:
        raise KeyError(f"{table.name} has no column {', '.join(unknown)}")
    quote = dialect.identifier_preparer.quote
    return _Shape(
        table=dialect.identifier_preparer.format_table(table),
        columns=columns,
        quoted={name: quote(name) for name in columns},
        processors=tuple(
            table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
        ),
    )


def _flat_parameters(shape: _Shape, rows: Sequence[Row]) -> tuple[Any, ...]:
    """The rows' values in column order, bind-processed, one flat tuple."""
    pairs = tuple(zip(shape.columns, shape.processors, strict=True))
    values: list[Any] = []
    append = values.append
    for row in rows:
        if len(row) != len(pairs):
            raise ValueError(f"a row for {shape.table} has columns {sorted(row)}")
        for name, process in pairs:
            value = row[name]
            append(value if process is None or value is None else process(value))
    return tuple(values)


def _insert_sql(shape: _Shape, count: int, conflict: tuple[str, ...], update: bool) -> str:
    group = "(" + ",".join("?" * len(shape.columns)) + ")"
    names = ",".join(shape.quoted.values())
    sql = f"INSERT INTO {shape.table} ({names}) VALUES " + ",".join([group] * count)
    if not conflict:
        return sql
    target = ",".join(shape.quoted[name] for name in conflict)
    if not update:
        return f"{sql} ON CONFLICT ({target}) DO NOTHING"
    updates = ",".join(
        f"{quoted}=excluded.{quoted}"
        for name, quoted in shape.quoted.items()
        if name not in conflict
    )
    return f"{sql} ON CONFLICT ({target}) DO UPDATE SET {updates}"


async def insert_rows(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[Row],
    *,
    on_conflict: tuple[str, ...] = (),
    update: bool = False,
) -> int:
    """Insert ``rows`` in as few statements as fit; how many rows were inserted or updated.

    Every row has the same columns (those of the first). With ``on_conflict`` (the columns of
    a primary key or unique constraint) a row whose key is taken is skipped, or with
    ``update`` replaces the stored row's other columns (then ``rows`` must not repeat a key).
    """
    if not rows:
        return 0
    shape = _shape(table, conn.dialect, tuple(rows[0]))
    missing = [name for name in on_conflict if name not in shape.quoted]
    if missing:
        raise ValueError(f"conflict columns {missing} are not among the rows' columns")
    changed = 0
    for chunk in chunks(rows, shape.rows_per_statement):
        result = await conn.exec_driver_sql(
            _insert_sql(shape, len(chunk), on_conflict, update), _flat_parameters(shape, chunk)
        )
        changed += max(result.rowcount, 0)
    return changed


async def delete_where_in(
    conn: AsyncConnection, table: Table, column: str, keys: Sequence[Any]
) -> None:
    """``DELETE FROM table WHERE column IN (keys)``, as few statements as the limit allows."""
    shape = _shape(table, conn.dialect, (column,))
    process = shape.processors[0]
    for chunk in chunks(keys, MAX_PARAMETERS):
        values = tuple(chunk if process is None else (process(key) for key in chunk))
        placeholders = ",".join("?" * len(values))
        await conn.exec_driver_sql(
            f"DELETE FROM {shape.table} WHERE {shape.quoted[column]} IN ({placeholders})", values
        )
