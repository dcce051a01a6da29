"""Long lists in pieces one statement can take: ``IN (...)`` lists, multi-row inserts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

Item = TypeVar("Item")

# Keeps an IN list well under every backend's bound-parameter limit.
IN_CHUNK = 500


def chunks(items: Sequence[Item], size: int = IN_CHUNK) -> Iterator[Sequence[Item]]:
    """``items`` in consecutive slices of at most ``size``."""
    if size < 1:
        raise ValueError(f"chunk size {size} is less than 1")
    for start in range(0, len(items), size):
        yield items[start : start + size]
