"""The month an export covers: from its first midnight to the next month's, in Asia/Seoul."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from call_monitor.timefmt import SEOUL

_MONTH = re.compile(r"(\d{4})-(\d{2})")


@dataclass(frozen=True, order=True, slots=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """``2026-11``; ``ValueError`` naming the expected form otherwise."""
        found = _MONTH.fullmatch(text.strip())
        if found is None or not 1 <= int(found[2]) <= 12 or int(found[1]) < 1970:
            raise ValueError(f"month: {text!r} is not a month written YYYY-MM (2026-11)")
        return cls(int(found[1]), int(found[2]))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    def shifted(self, months: int) -> Month:
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    @property
    def start(self) -> datetime:
        """The first instant of the month, Seoul midnight (aware)."""
        return datetime(self.year, self.month, 1, tzinfo=SEOUL)

    @property
    def end(self) -> datetime:
        """The first instant after the month (the next month's start): a half-open range."""
        return self.shifted(1).start

    def days(self) -> Iterator[date]:
        day = self.first_day
        while day < self.shifted(1).first_day:
            yield day
            day += timedelta(days=1)
