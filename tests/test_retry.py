"""``call_monitor/retry.py``: the backoff delays, and ``write_or_set_aside``: refused data is
set aside (halving until it is alone), the rest written; other failures propagate with
everything kept."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from call_monitor.store.retry import Backoff, WriteQueue, is_data_error, write_or_set_aside

QUEUE = WriteQueue(logging.getLogger("test"), "test", "parts", lambda: 0)


class Database:
    """Writes parts in transactions; refuses any transaction holding a bad part."""

    def __init__(self, bad: set[str], down: bool = False) -> None:
        self.bad, self.down = bad, down
        self.stored: list[str] = []
        self.transactions: list[list[str]] = []

    async def write(self, parts: Sequence[str]) -> None:
        self.transactions.append(list(parts))
        if self.down:
            raise OperationalError("INSERT", {}, ConnectionError("server closed the connection"))
        if self.bad & set(parts):
            raise IntegrityError("INSERT", {}, ValueError("NOT NULL constraint failed"))
        self.stored += parts


async def test_a_refused_part_is_set_aside_and_the_others_written() -> None:
    database = Database(bad={"c", "e"})
    written: list[list[str]] = []
    refused: list[str] = []
    failed: list[Exception] = []
    await write_or_set_aside(
        ["a", "b", "c", "d", "e"],
        database.write,
        QUEUE,
        written=lambda parts: written.append(list(parts)),
        refused=lambda part, exc: refused.append(part),
        failed=lambda exc, parts: failed.append(exc),
    )
    assert database.stored == ["a", "b", "d"]
    assert refused == ["c", "e"]
    assert written == [["a", "b"], ["d"]]  # halves, halved again while refused
    assert failed == []
    assert database.transactions == [
        ["a", "b", "c", "d", "e"],  # all at once first
        ["a", "b"],
        ["c", "d", "e"],
        ["c"],
        ["d", "e"],
        ["d"],
        ["e"],
    ]


async def test_one_bad_part_among_many_costs_a_few_transactions() -> None:
    parts = [f"p{n}" for n in range(2000)]
    database = Database(bad={"p1234"})
    refused: list[str] = []
    await write_or_set_aside(
        parts,
        database.write,
        QUEUE,
        written=lambda parts: None,
        refused=lambda part, exc: refused.append(part),
        failed=lambda exc, parts: pytest.fail("failed"),
    )
    assert refused == ["p1234"]
    assert sorted(database.stored) == sorted(set(parts) - {"p1234"})
    assert len(database.transactions) <= 2 * 11 + 1  # two halves a level, log2(2000) < 11


async def test_all_good_is_one_transaction() -> None:
    database = Database(bad=set())
    written: list[list[str]] = []
    await write_or_set_aside(
        ["a", "b"],
        database.write,
        QUEUE,
        written=lambda parts: written.append(list(parts)),
        refused=lambda part, exc: pytest.fail(f"{part} refused"),
        failed=lambda exc, parts: pytest.fail("failed"),
    )
    assert database.transactions == [["a", "b"]]
    assert written == [["a", "b"]]


async def test_a_lost_connection_propagates_and_nothing_is_set_aside() -> None:
    database = Database(bad={"b"}, down=True)
    failed: list[list[str]] = []
    with pytest.raises(OperationalError):
        await write_or_set_aside(
            ["a", "b"],
            database.write,
            QUEUE,
            written=lambda parts: pytest.fail("written"),
            refused=lambda part, exc: pytest.fail(f"{part} refused"),
            failed=lambda exc, parts: failed.append(list(parts)),
        )
    assert failed == [["a", "b"]]
    assert database.transactions == [["a", "b"]]  # not split: a retry later can help


def test_data_errors_are_told_from_lost_connections() -> None:
    assert is_data_error(IntegrityError("INSERT", {}, ValueError("duplicate")))
    assert not is_data_error(OperationalError("INSERT", {}, ConnectionError("gone")))
    assert not is_data_error(RuntimeError("not from the database"))


def test_the_retry_delays_double_up_to_the_cap() -> None:
    delays = Backoff(0.5, 3.0).delays()
    assert [next(delays) for _ in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
