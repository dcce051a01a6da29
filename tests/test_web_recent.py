"""The pages' short-lived answers (``web/recent.py``): computed once per key and while,
shared by those who ask at once, recomputed when old or failed, bounded."""

from __future__ import annotations

import asyncio

import pytest

from call_monitor.web.recent import Recent


class Counting:
    """A computation that counts its runs and can be held until released."""

    def __init__(self) -> None:
        self.runs = 0
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, answer: str = "x") -> str:
        self.runs += 1
        await self.release.wait()
        return f"{answer}{self.runs}"


async def test_an_answer_is_kept_for_its_while_then_computed_again() -> None:
    now = [100.0]
    recent: Recent[str, str] = Recent(60.0, clock=lambda: now[0])
    compute = Counting()
    assert await recent.get("a", compute) == "x1"
    now[0] += 59.0
    assert await recent.get("a", compute) == "x1"
    assert await recent.get("b", compute) == "x2"  # another key, its own answer
    now[0] += 1.0
    assert await recent.get("a", compute) == "x3"


async def test_those_who_ask_at_once_share_one_computation() -> None:
    recent: Recent[str, str] = Recent(60.0)
    compute = Counting()
    compute.release.clear()
    askers = [asyncio.create_task(recent.get("a", compute)) for _ in range(20)]
    await asyncio.sleep(0)
    compute.release.set()
    assert await asyncio.gather(*askers) == ["x1"] * 20
    assert compute.runs == 1


async def test_one_asker_leaving_does_not_cancel_the_others_answer() -> None:
    recent: Recent[str, str] = Recent(60.0)
    compute = Counting()
    compute.release.clear()
    leaving = asyncio.create_task(recent.get("a", compute))
    staying = asyncio.create_task(recent.get("a", compute))
    await asyncio.sleep(0)
    leaving.cancel()
    compute.release.set()
    assert await staying == "x1"
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_a_failed_computation_is_not_kept() -> None:
    recent: Recent[str, str] = Recent(60.0)
    runs = 0

    async def flaky() -> str:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise OSError("store down")
        return "ok"

    with pytest.raises(OSError, match="store down"):
        await recent.get("a", flaky)
    assert await recent.get("a", flaky) == "ok"


async def test_at_most_max_keys_are_kept() -> None:
    recent: Recent[int, str] = Recent(60.0, max_keys=3)
    compute = Counting()
    for key in range(10):
        await recent.get(key, compute)
    assert len(recent._kept) == 3
    assert await recent.get(9, compute) == "x10"  # the newest stayed
    assert await recent.get(0, compute) == "x11"  # the oldest went
