"""``call_monitor/store/retry.py``: the backoff windows and their reset after a success, and
``write_or_set_aside``: refused data is set aside (halving until it is alone), the rest
written; other failures propagate with everything kept."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from call_monitor.backoff import Backoff
from call_monitor.store.retry import (
    WriteQueue,
    is_data_error,
    write_or_set_aside,
    write_until_stopped,
    write_until_written,
)
from tests.jitter import WindowsSeen

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
    delays = Backoff(0.5, 3.0).ceilings()  # the windows the jittered delays are drawn from
    assert [next(delays) for _ in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


class Flaky:
    """A flush that fails or succeeds as told, in turn; the queue empties at the end."""

    def __init__(self, outcomes: list[bool], stop: asyncio.Event | None = None) -> None:
        self.outcomes, self.stop = list(outcomes), stop

    def pending(self) -> int:
        return len(self.outcomes)

    async def flush(self) -> None:
        works = self.outcomes.pop(0)
        if not self.outcomes and self.stop is not None:
            self.stop.set()
        if not works:
            raise OperationalError("INSERT", {}, ConnectionError("server closed the connection"))


async def test_the_background_loop_starts_the_backoff_anew_after_a_success() -> None:
    stop = asyncio.Event()
    flaky = Flaky([False, False, True, False, False, False, True], stop)
    rng = WindowsSeen()
    queue = WriteQueue(logging.getLogger("test"), "test", "parts", flaky.pending)
    await asyncio.wait_for(
        write_until_stopped(
            flaky.flush,
            queue,
            Backoff(0.001, 0.004, rng=rng),
            stop=stop,
            wake=asyncio.Event(),
            due=lambda: True,
            interval=1.0,
        ),
        timeout=5,
    )
    assert flaky.outcomes == []
    # Back to the first window after the success.
    assert rng.windows == [0.001, 0.002, 0.001, 0.002, 0.004]


async def test_the_last_flush_starts_its_own_backoff() -> None:
    flaky = Flaky([False, False, True])
    rng = WindowsSeen()
    backoff = Backoff(0.001, 0.004, rng=rng)
    backoff.next_delay()  # the background loop was failing when it was stopped
    backoff.next_delay()
    queue = WriteQueue(logging.getLogger("test"), "test", "parts", flaky.pending)
    await write_until_written(flaky.flush, queue, backoff, give_up_after=5)
    assert flaky.outcomes == []
    assert rng.windows == [0.001, 0.002, 0.001, 0.002]
