"""A random source that shows which backoff windows a policy drew its delays from."""

from __future__ import annotations

import random


class WindowsSeen(random.Random):
    """Seeded; notes the upper bound of every ``uniform`` draw (full jitter: the window)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.windows: list[float] = []

    def uniform(self, a: float, b: float) -> float:
        self.windows.append(b)
        return super().uniform(a, b)
