"""A query's rows read from a SQLite file by a child process (``store/sqlite_rows.py``):
the rows the file holds, in batches; a failure named; an early stop leaves no process."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

from call_monitor.store.sqlite_rows import PUMP_NAME, ReadFailed, sqlite_rows

STRANGE = ["O'Brien", '"=cmd|x"', "김철수", "\x00nul", "tab\there", "🙂", ""]


def _file(tmp_path: Path, rows: int) -> str:
    path = tmp_path / "store.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")  # as the store's
    db.execute("CREATE TABLE t (id INTEGER, name TEXT, seconds REAL, empty TEXT)")
    db.executemany(
        "INSERT INTO t VALUES (?, ?, ?, NULL)",
        [
            (
                i,
                STRANGE[i % len(STRANGE)],
                i / 7,
            )
            for i in range(rows)
        ],
    )
    db.commit()
    db.close()
    return str(path)


def _children() -> set[int]:
    """This process's live children (Linux)."""
    found: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(pid) for pid in text)
    return found


async def test_every_row_as_the_file_holds_it_in_batches(tmp_path: Path) -> None:
    path = _file(tmp_path, 2500)
    sql = "SELECT id, name, seconds, empty FROM t ORDER BY id"
    batches = [batch async for batch in sqlite_rows(path, sql, 1000)]
    assert [len(b) for b in batches] == [1000, 1000, 500]
    rows = [row for batch in batches for row in batch]
    assert rows == sqlite3.connect(path).execute(sql).fetchall()
    assert rows[3] == (3, STRANGE[3], 3 / 7, None)  # NUL, floats, NULL: exact


async def test_a_literal_with_quotes_reads_back(tmp_path: Path) -> None:
    path = _file(tmp_path, 10)
    rows = [
        r async for b in sqlite_rows(path, "SELECT id FROM t WHERE name = 'O''Brien'", 5) for r in b
    ]
    assert rows == [(0,), (7,)]


async def test_no_rows_is_no_batch(tmp_path: Path) -> None:
    path = _file(tmp_path, 3)
    assert [b async for b in sqlite_rows(path, "SELECT id FROM t WHERE id < 0", 10)] == []


async def test_a_failure_is_named(tmp_path: Path) -> None:
    path = _file(tmp_path, 3)
    with pytest.raises(ReadFailed, match="no such table: missing"):
        _ = [b async for b in sqlite_rows(path, "SELECT * FROM missing", 10)]
    with pytest.raises(ReadFailed, match="unable to open database"):
        _ = [b async for b in sqlite_rows(str(tmp_path / "none.sqlite3"), "SELECT 1", 10)]
    assert not (tmp_path / "none.sqlite3").exists()  # read-only: never creates the file


async def test_stopping_early_stops_the_child(tmp_path: Path) -> None:
    path = _file(tmp_path, 50_000)
    before = _children()
    rows = sqlite_rows(path, "SELECT id, name FROM t", 100)
    first = await anext(rows)
    assert len(first) == 100
    assert _children() - before  # the child is reading (and waits: the queue is full)
    await rows.aclose()
    assert _children() - before == set()
    assert PUMP_NAME not in {thread.name for thread in threading.enumerate()}
