"""근무시간: a pure working-time clock in Asia/Seoul for the charter's "1 working hour".

Working time is a set of half-open intervals ``[open, close)``, one or two a day (two when a
lunch break cuts the day). A day is closed if it is in ``extra_closed``; else open if it is
in ``extra_open``; else closed on a Korean public holiday (``holidays`` package: substitute
holidays, lunar holidays and election days included) or on a weekday missing from
``days``; else open for that weekday's hours.

Boundary semantics of ``add(start, s)``: the result is the *earliest* instant ``T`` with
``between(start, T) == s``. So for ``s > 0`` it lies in working time or exactly on a closing
instant: a deadline that runs out at closing is 18:00 that day, not 09:00 the next working
day. ``subtract(end, s)`` is the mirror: the *latest* ``T`` with ``between(T, end) == s``,
so it lies in working time (possibly on an opening instant). With ``s == 0`` both return
their argument unchanged, even outside working time.

Every instant must be timezone-aware (any zone: converted to Seoul); naive datetimes are
rejected, since guessing their zone would silently shift deadlines by hours. Arithmetic is
done on UTC instants in whole microseconds (``timedelta``), so results are exact and
``add(add(t, a), b) == add(t, a + b)`` for ``timedelta`` arguments. The walk goes a day at a
time over the day's intervals, never minute by minute.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import holidays

from call_monitor.config import WEEKDAYS, TimeSpan, WorkingHoursSettings
from call_monitor.timefmt import SEOUL

Interval = tuple[datetime, datetime]

ONE_DAY = timedelta(days=1)
# A year and a bit without a single working minute means a misconfiguration (no days).
MAX_IDLE_DAYS = 400
_DAY_CACHE_LIMIT = 4096


class NaiveDatetimeError(ValueError):
    """A datetime without a timezone was given where an instant is needed."""


def to_seoul(at: datetime) -> datetime:
    """``at`` in Asia/Seoul; refuses naive datetimes (their zone is a guess)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise NaiveDatetimeError(
            f"naive datetime {at.isoformat()}: pass a timezone-aware datetime "
            "(for example datetime.fromtimestamp(epoch, ZoneInfo('Asia/Seoul')))"
        )
    return at.astimezone(SEOUL)


def _to_delta(seconds: float | timedelta) -> timedelta:
    if isinstance(seconds, timedelta):
        return seconds
    # timedelta rounds to the microsecond and raises on NaN and infinities.
    return timedelta(seconds=seconds)


class WorkingHours:
    """Working-time arithmetic for one office's settings. Holds only caches, no clock."""

    def __init__(self, settings: WorkingHoursSettings) -> None:
        self.settings = settings
        self._extra_closed = frozenset(settings.extra_closed)
        self._extra_open = frozenset(settings.extra_open)
        self._holidays: dict[int, frozenset[date]] = {}
        self._days: dict[date, tuple[Interval, ...]] = {}

    # -- the calendar -------------------------------------------------------------------

    def public_holidays(self, year: int) -> frozenset[date]:
        """Korean public holidays of ``year`` (cached: the package computes lunar dates)."""
        cached = self._holidays.get(year)
        if cached is None:
            cached = frozenset(holidays.country_holidays("KR", years=year))
            self._holidays[year] = cached
        return cached

    def hours_of(self, day: date) -> TimeSpan | None:
        """The opening hours of ``day`` before the lunch break, or ``None`` if closed."""
        if day in self._extra_closed:
            return None
        weekday_hours = self.settings.days.get(WEEKDAYS[day.weekday()])
        if day in self._extra_open:
            return weekday_hours or self.settings.extra_open_hours
        if weekday_hours is None or day in self.public_holidays(day.year):
            return None
        return weekday_hours

    def is_working_day(self, day: date) -> bool:
        return self.hours_of(day) is not None

    def intervals(self, day: date) -> list[Interval]:
        """The working intervals ``[open, close)`` of a Seoul calendar day, in Seoul time."""
        return [(a.astimezone(SEOUL), b.astimezone(SEOUL)) for a, b in self._intervals(day)]

    def _intervals(self, day: date) -> tuple[Interval, ...]:
        """As ``intervals`` but in UTC, where subtraction is true elapsed time."""
        cached = self._days.get(day)
        if cached is not None:
            return cached
        hours = self.hours_of(day)
        spans: list[tuple[time, time]] = []
        if hours is not None:
            spans = [(hours.start, hours.end)]
            lunch = self.settings.lunch
            if lunch is not None and lunch.start < hours.end and hours.start < lunch.end:
                spans = [
                    (s, e) for s, e in ((hours.start, lunch.start), (lunch.end, hours.end)) if s < e
                ]
        result = tuple(
            (
                datetime.combine(day, s, tzinfo=SEOUL).astimezone(UTC),
                datetime.combine(day, e, tzinfo=SEOUL).astimezone(UTC),
            )
            for s, e in spans
        )
        if len(self._days) >= _DAY_CACHE_LIMIT:
            self._days.clear()
        self._days[day] = result
        return result

    # -- instants -------------------------------------------------------------------------

    def is_working(self, at: datetime) -> bool:
        """Whether ``at`` is inside working time (opening instant in, closing instant out)."""
        local = to_seoul(at)
        instant = local.astimezone(UTC)
        return any(a <= instant < b for a, b in self._intervals(local.date()))

    def is_closing(self, at: datetime) -> bool:
        """Whether ``at`` is exactly the end of a working interval (18:00, or lunch start)."""
        local = to_seoul(at)
        instant = local.astimezone(UTC)
        return any(b == instant for _, b in self._intervals(local.date()))

    def add(self, start: datetime, seconds: float | timedelta) -> datetime:
        """The earliest instant after ``seconds`` of working time from ``start`` (Seoul).

        Negative ``seconds`` go backwards (``subtract``).
        """
        remaining = _to_delta(seconds)
        local = to_seoul(start)
        if remaining < timedelta(0):
            return self.subtract(local, -remaining)
        if remaining == timedelta(0):
            return local
        instant = local.astimezone(UTC)
        day = local.date()
        idle = 0
        while idle <= MAX_IDLE_DAYS:
            found = False
            for a, b in self._intervals(day):
                found = True
                if b <= instant:
                    continue
                begin = max(a, instant)
                available = b - begin
                if remaining <= available:
                    return (begin + remaining).astimezone(SEOUL)
                remaining -= available
            idle = 0 if found else idle + 1
            day += ONE_DAY
        raise ValueError(f"no working time within {MAX_IDLE_DAYS} days after {local}")

    def subtract(self, end: datetime, seconds: float | timedelta) -> datetime:
        """The latest instant ``seconds`` of working time before ``end`` (Seoul)."""
        remaining = _to_delta(seconds)
        local = to_seoul(end)
        if remaining < timedelta(0):
            return self.add(local, -remaining)
        if remaining == timedelta(0):
            return local
        instant = local.astimezone(UTC)
        day = local.date()
        idle = 0
        while idle <= MAX_IDLE_DAYS:
            found = False
            for a, b in reversed(self._intervals(day)):
                found = True
                if a >= instant:
                    continue
                finish = min(b, instant)
                available = finish - a
                if remaining <= available:
                    return (finish - remaining).astimezone(SEOUL)
                remaining -= available
            idle = 0 if found else idle + 1
            day -= ONE_DAY
        raise ValueError(f"no working time within {MAX_IDLE_DAYS} days before {local}")

    def working_delta(self, a: datetime, b: datetime) -> timedelta:
        """Working time in ``[a, b)``, exact; negative when ``b`` is before ``a``."""
        start, end = to_seoul(a), to_seoul(b)
        if end < start:
            return -self.working_delta(end, start)
        lo, hi = start.astimezone(UTC), end.astimezone(UTC)
        total = timedelta(0)
        day, last = start.date(), end.date()
        while day <= last:
            for x, y in self._intervals(day):
                overlap = min(y, hi) - max(x, lo)
                if overlap > timedelta(0):
                    total += overlap
            day += ONE_DAY
        return total

    def between(self, a: datetime, b: datetime) -> float:
        """Working seconds in ``[a, b)``; negative when ``b`` is before ``a``."""
        return self.working_delta(a, b).total_seconds()
