"""Many rows in few statements, for SQLite: a batch of calls in about seven steps.

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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

Row = dict[str, Any]
Processor = Callable[[Any], Any]

# SQLite's default SQLITE_MAX_VARIABLE_NUMBER: 32,766 since 3.32.0, 999 before.
MAX_PARAMETERS = 32_766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


@dataclass(frozen=True, slots=True)
class _Shape:
    """A table as the statements need it: quoted names and each column's bind processor."""

    table: str
    columns: tuple[str, ...]
    quoted: tuple[str, ...]
    processors: tuple[Processor | None, ...]

    @property
    def rows_per_statement(self) -> int:
        return max(1, MAX_PARAMETERS // len(self.columns))


@lru_cache(maxsize=64)
def _shape(table: Table, dialect: Dialect) -> _Shape:
    quote = dialect.identifier_preparer.quote
    columns = tuple(column.name for column in table.columns)
    return _Shape(
        table=dialect.identifier_preparer.format_table(table),
        columns=columns,
        quoted=tuple(quote(name) for name in columns),
        processors=tuple(
            column.type.dialect_impl(dialect).bind_processor(dialect) for column in table.columns
        ),
    )


def _flat_parameters(shape: _Shape, rows: Sequence[Row]) -> list[Any]:
    """The rows' values in column order, bind-processed, one flat list."""
    pairs = tuple(zip(shape.columns, shape.processors, strict=True))
    values: list[Any] = []
    append = values.append
    for row in rows:
        for name, process in pairs:
            value = row[name]
            append(value if process is None or value is None else process(value))
    return values


def _insert_sql(shape: _Shape, count: int, upsert_key: str | None) -> str:
    group = "(" + ",".join("?" * len(shape.columns)) + ")"
    sql = f"INSERT INTO {shape.table} ({','.join(shape.quoted)}) VALUES " + ",".join(
        [group] * count
    )
    if upsert_key is None:
        return sql
    updates = ",".join(
        f"{quoted}=excluded.{quoted}"
        for name, quoted in zip(shape.columns, shape.quoted, strict=True)
        if name != upsert_key
    )
    key = shape.quoted[shape.columns.index(upsert_key)]
    return f"{sql} ON CONFLICT ({key}) DO UPDATE SET {updates}"


def _slices(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def insert_rows(
    conn: AsyncConnection, table: Table, rows: Sequence[Row], *, upsert_key: str | None = None
) -> None:
    """Insert ``rows`` (each with every column of ``table``) in as few statements as fit.

    With ``upsert_key`` (the primary key's one column) a row whose key exists replaces the
    stored one's other columns; ``rows`` must not repeat a key.
    """
    shape = _shape(table, conn.dialect)
    for chunk in _slices(rows, shape.rows_per_statement):
        await conn.exec_driver_sql(
            _insert_sql(shape, len(chunk), upsert_key), tuple(_flat_parameters(shape, chunk))
        )


async def delete_where_in(
    conn: AsyncConnection, table: Table, column: str, keys: Sequence[Any]
) -> None:
    """``DELETE FROM table WHERE column IN (keys)``, as few statements as the limit allows."""
    shape = _shape(table, conn.dialect)
    quoted = shape.quoted[shape.columns.index(column)]
    process = shape.processors[shape.columns.index(column)]
    for chunk in _slices(keys, MAX_PARAMETERS):
        values = tuple(chunk if process is None else (process(key) for key in chunk))
        placeholders = ",".join("?" * len(values))
        await conn.exec_driver_sql(
            f"DELETE FROM {shape.table} WHERE {quoted} IN ({placeholders})", values
        )
