"""Answers kept a short while: the calls page's totals of a month (the heaviest read of the
pages, tens of ms of the database for a whole month) are computed once a minute per filter,
not once per person and page, and twenty people asking at once share one computation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    """``get(key, compute)``: the answer computed for ``key`` less than ``seconds`` ago, or a
    new one. At most ``max_keys`` kept (the oldest go first); a computation that failed is
    not kept."""

    def __init__(
        self, seconds: float, max_keys: int = 512, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self.max_keys = max_keys
        self.clock = clock
        self._kept: dict[K, tuple[float, asyncio.Task[V]]] = {}

    async def get(self, key: K, compute: Callable[[], Coroutine[Any, Any, V]]) -> V:
        now = self.clock()
        kept = self._kept.get(key)
        if kept is None or now - kept[0] >= self.seconds or _failed(kept[1]):
            self._make_room(now)
            kept = (now, asyncio.create_task(compute()))
            self._kept[key] = kept
        # Shielded: one person who leaves (a cancelled request) does not cancel the others'
        # answer; the task is awaited by every asker, and kept until it expires.
        return await asyncio.shield(kept[1])

    def _make_room(self, now: float) -> None:
        if len(self._kept) < self.max_keys:
            return
        for key in [k for k, (at, _) in self._kept.items() if now - at >= self.seconds]:
            del self._kept[key]
        while len(self._kept) >= self.max_keys:
            del self._kept[next(iter(self._kept))]


def _failed(task: asyncio.Task[Any]) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)
