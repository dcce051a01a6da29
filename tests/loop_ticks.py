"""Whether an event loop stayed free: a task that sleeps 5 ms again and again and notes the
gaps between its wake-ups while the code under test runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


@contextlib.asynccontextmanager
async def ticking() -> AsyncIterator[list[float]]:
    """The gaps (seconds) between the ticks seen while the ``async with`` body ran."""
    loop = asyncio.get_running_loop()
    gaps: list[float] = []

    async def tick() -> None:
        last = loop.time()
        while True:
            await asyncio.sleep(0.005)
            gaps.append(loop.time() - last)
            last = loop.time()

    ticker = asyncio.create_task(tick())
    try:
        yield gaps
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
