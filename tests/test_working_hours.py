"""The working-time clock: known 2026 dates (checked against the holidays package) and
properties of add / subtract / between."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from call_monitor.charter.working_hours import NaiveDatetimeError, WorkingHours
from call_monitor.config import Settings, TimeSpan, WorkingHoursSettings
from call_monitor.timefmt import SEOUL

HOUR = 3600.0
DEFAULT = WorkingHours(WorkingHoursSettings())
LUNCH = WorkingHours(WorkingHoursSettings(lunch=TimeSpan(start=time(12), end=time(13))))


def seoul(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SEOUL)


# -- what the holidays package says about 2026 ------------------------------------------

KR_2026 = holidays.country_holidays("KR", years=2026)


@pytest.mark.parametrize(
    ("day", "name"),
    [
        (date(2026, 9, 24), "The day preceding Chuseok"),
        (date(2026, 9, 25), "Chuseok"),
        (date(2026, 9, 26), "The second day of Chuseok"),
        (date(2026, 3, 2), "Alternative holiday for Independence Movement Day"),
        (date(2026, 5, 25), "Alternative holiday for Buddha's Birthday"),
        (date(2026, 8, 17), "Alternative holiday for Liberation Day"),
        (date(2026, 10, 5), "Alternative holiday for National Foundation Day"),
        (date(2026, 6, 3), "Local Election Day"),
        (date(2026, 5, 1), "Labor Day"),
        (date(2026, 7, 17), "Constitution Day"),
    ],
)
def test_package_2026_holidays(day: date, name: str) -> None:
    assert KR_2026.get(day) == name
    assert day in DEFAULT.public_holidays(2026)


def test_holidays_cached_per_year() -> None:
    hours = WorkingHours(WorkingHoursSettings())
    assert hours.public_holidays(2026) is hours.public_holidays(2026)
    assert date(2027, 9, 15) in hours.public_holidays(2027)  # Chuseok 2027


# -- the charter's own examples ------------------------------------------------------------


def test_friday_1740_is_due_monday_0940() -> None:
    assert date(2026, 11, 30) not in KR_2026  # an ordinary Monday
    assert DEFAULT.add(seoul(2026, 11, 27, 17, 40), HOUR) == seoul(2026, 11, 30, 9, 40)


def test_saturday_1530_is_due_monday_1000() -> None:
    due = DEFAULT.add(seoul(2026, 11, 28, 15, 30), HOUR)
    assert due == seoul(2026, 11, 30, 10, 0)
    assert due.utcoffset() == timedelta(hours=9)


def test_deadline_at_closing_is_1800_same_day() -> None:
    due = DEFAULT.add(seoul(2026, 11, 27, 17, 0), HOUR)
    assert due == seoul(2026, 11, 27, 18, 0)
    assert not DEFAULT.is_working(due)
    assert DEFAULT.is_closing(due)
    # One more microsecond of work moves it to the next working day.
    assert DEFAULT.add(seoul(2026, 11, 27, 17, 0), HOUR + 1e-6) == seoul(
        2026, 11, 30, 9
    ) + timedelta(microseconds=1)


def test_opening_and_closing_instants() -> None:
    assert DEFAULT.is_working(seoul(2026, 11, 27, 9, 0))
    assert DEFAULT.is_working(datetime(2026, 11, 27, 17, 59, 59, tzinfo=SEOUL))
    assert not DEFAULT.is_working(seoul(2026, 11, 27, 18, 0))
    assert not DEFAULT.is_working(seoul(2026, 11, 28, 10, 0))  # Saturday


# -- holidays --------------------------------------------------------------------------------


def test_chuseok_2026() -> None:
    # Thu 24 - Sat 26 September; no substitute day, since it does not touch a Sunday.
    for day in (24, 25):
        assert not DEFAULT.is_working(seoul(2026, 9, day, 10))
    assert DEFAULT.add(seoul(2026, 9, 23, 17, 30), HOUR) == seoul(2026, 9, 28, 9, 30)
    assert DEFAULT.between(seoul(2026, 9, 23, 9), seoul(2026, 9, 29, 9)) == 2 * 9 * HOUR


def test_substitute_holidays_2026() -> None:
    # Liberation Day falls on Saturday 15 August: Monday 17 August is its substitute.
    assert not DEFAULT.is_working(seoul(2026, 8, 17, 10))
    assert DEFAULT.add(seoul(2026, 8, 14, 17, 30), HOUR) == seoul(2026, 8, 18, 9, 30)
    # National Foundation Day on Saturday 3 October: Monday 5 October.
    assert DEFAULT.add(seoul(2026, 10, 2, 17, 30), HOUR) == seoul(2026, 10, 6, 9, 30)


def test_local_election_day_2026() -> None:
    assert not DEFAULT.is_working(seoul(2026, 6, 3, 10))
    assert DEFAULT.add(seoul(2026, 6, 2, 17, 30), HOUR) == seoul(2026, 6, 4, 9, 30)


def test_labor_day_and_constitution_day_2026() -> None:
    assert not DEFAULT.is_working(seoul(2026, 5, 1, 10))  # Friday
    assert DEFAULT.add(seoul(2026, 7, 16, 17, 30), HOUR) == seoul(2026, 7, 20, 9, 30)


# -- configuration -----------------------------------------------------------------------------


def test_lunch_break() -> None:
    assert not LUNCH.is_working(seoul(2026, 11, 30, 12, 30))
    assert LUNCH.add(seoul(2026, 11, 30, 11, 30), HOUR) == seoul(2026, 11, 30, 13, 30)
    assert LUNCH.add(seoul(2026, 11, 30, 12, 15), HOUR) == seoul(2026, 11, 30, 14, 0)
    # Earliest instant: running out at the start of lunch gives 12:00, not 13:00.
    assert LUNCH.add(seoul(2026, 11, 30, 11), HOUR) == seoul(2026, 11, 30, 12)
    assert LUNCH.between(seoul(2026, 11, 30, 11), seoul(2026, 11, 30, 14)) == 2 * HOUR
    assert LUNCH.subtract(seoul(2026, 11, 30, 13, 10), 900) == seoul(2026, 11, 30, 11, 55)
    assert LUNCH.between(seoul(2026, 11, 30), seoul(2026, 12, 1)) == 8 * HOUR


def test_extra_closed_day() -> None:
    hours = WorkingHours(WorkingHoursSettings(extra_closed=[date(2026, 11, 30)]))
    assert not hours.is_working(seoul(2026, 11, 30, 10))
    assert hours.add(seoul(2026, 11, 27, 17, 40), HOUR) == seoul(2026, 12, 1, 9, 40)


def test_extra_open_days() -> None:
    hours = WorkingHours(WorkingHoursSettings(extra_open=[date(2026, 11, 28), date(2026, 6, 3)]))
    # A Saturday opened with the default extra-open hours, a holiday with its weekday's.
    assert hours.add(seoul(2026, 11, 28, 15, 30), HOUR) == seoul(2026, 11, 28, 16, 30)
    assert hours.add(seoul(2026, 11, 28, 17, 30), HOUR) == seoul(2026, 11, 30, 9, 30)
    assert hours.is_working(seoul(2026, 6, 3, 10))


def test_hours_per_weekday() -> None:
    settings = Settings(
        working_hours={
            "days": {
                "mon": {"start": "08:30", "end": "17:30"},
                "fri": {"start": "09:00", "end": "16:00"},
            },
            "lunch": {"start": "12:00", "end": "13:00"},
        }
    )
    hours = WorkingHours(settings.working_hours)
    assert not hours.is_working(seoul(2026, 12, 1, 10))  # Tuesday: not configured
    assert hours.add(seoul(2026, 11, 27, 15, 40), HOUR) == seoul(2026, 11, 30, 9, 10)
    assert hours.intervals(date(2026, 11, 30)) == [
        (seoul(2026, 11, 30, 8, 30), seoul(2026, 11, 30, 12)),
        (seoul(2026, 11, 30, 13), seoul(2026, 11, 30, 17, 30)),
    ]


def test_settings_are_validated() -> None:
    with pytest.raises(ValidationError):
        WorkingHoursSettings(extra_closed=[date(2026, 1, 2)], extra_open=[date(2026, 1, 2)])
    with pytest.raises(ValidationError):
        TimeSpan(start=time(18), end=time(9))
    with pytest.raises(ValidationError):
        WorkingHoursSettings.model_validate({"timezone": "UTC"})


def test_no_working_days_fails_clearly() -> None:
    hours = WorkingHours(WorkingHoursSettings(days={}))
    with pytest.raises(ValueError, match="no working time"):
        hours.add(seoul(2026, 11, 27), HOUR)


# -- time zones ---------------------------------------------------------------------------------


def test_naive_datetimes_are_rejected() -> None:
    naive = datetime(2026, 11, 27, 17, 40)
    for call in (
        lambda: DEFAULT.is_working(naive),
        lambda: DEFAULT.add(naive, HOUR),
        lambda: DEFAULT.subtract(naive, HOUR),
        lambda: DEFAULT.between(naive, seoul(2026, 11, 30)),
    ):
        with pytest.raises(NaiveDatetimeError, match="timezone-aware"):
            call()


def test_any_time_zone_is_converted_to_seoul() -> None:
    start = datetime(2026, 11, 27, 8, 40, tzinfo=UTC)  # 17:40 in Seoul
    due = DEFAULT.add(start, HOUR)
    assert due == seoul(2026, 11, 30, 9, 40)
    assert due.tzinfo == SEOUL
    new_york = datetime(2026, 11, 27, 3, 40, tzinfo=ZoneInfo("America/New_York"))
    assert DEFAULT.add(new_york, HOUR) == seoul(2026, 11, 30, 9, 40)


def test_between_is_signed() -> None:
    a, b = seoul(2026, 11, 27, 17, 40), seoul(2026, 11, 30, 9, 40)
    assert DEFAULT.between(a, b) == HOUR
    assert DEFAULT.between(b, a) == -HOUR
    assert DEFAULT.add(b, -HOUR) == DEFAULT.subtract(b, HOUR) == seoul(2026, 11, 27, 17, 40)


def test_long_spans_walk_by_day() -> None:
    start = seoul(2026, 1, 1)
    end = DEFAULT.add(start, 5 * 250 * 9 * HOUR)  # about five working years
    assert DEFAULT.between(start, end) == 5 * 250 * 9 * HOUR


# -- properties ------------------------------------------------------------------------------------

CLOCKS = st.sampled_from([DEFAULT, LUNCH])
ZONES = st.sampled_from([SEOUL, UTC, ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata")])
INSTANTS = st.datetimes(
    min_value=datetime(2025, 12, 1),
    max_value=datetime(2027, 12, 31),
    timezones=ZONES,
    allow_imaginary=False,
)
MAX_WORK_US = 40 * 9 * 3600 * 10**6  # forty working days
DURATIONS = st.integers(min_value=0, max_value=MAX_WORK_US).map(
    lambda us: timedelta(microseconds=us)
)


@settings(max_examples=300, deadline=None)
@given(clock=CLOCKS, start=INSTANTS, span=DURATIONS)
def test_add_is_never_before_start_and_lands_in_working_time(
    clock: WorkingHours, start: datetime, span: timedelta
) -> None:
    due = clock.add(start, span)
    assert due >= start
    assert due.tzinfo == SEOUL
    if span > timedelta(0):
        assert clock.is_working(due) or clock.is_closing(due)
    else:
        assert due == start


@settings(max_examples=300, deadline=None)
@given(clock=CLOCKS, start=INSTANTS, a=DURATIONS, b=DURATIONS)
def test_add_is_associative(
    clock: WorkingHours, start: datetime, a: timedelta, b: timedelta
) -> None:
    assert clock.add(clock.add(start, a), b) == clock.add(start, a + b)


@settings(max_examples=200, deadline=None)
@given(
    clock=CLOCKS,
    start=INSTANTS,
    a=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    b=st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
def test_add_float_seconds_to_the_microsecond(
    clock: WorkingHours, start: datetime, a: float, b: float
) -> None:
    # Float seconds are rounded to whole microseconds, once per call.
    drift = clock.add(clock.add(start, a), b) - clock.add(start, a + b)
    assert abs(drift) <= timedelta(microseconds=1)


@settings(max_examples=300, deadline=None)
@given(clock=CLOCKS, start=INSTANTS, span=DURATIONS)
def test_between_inverts_add_and_subtract(
    clock: WorkingHours, start: datetime, span: timedelta
) -> None:
    assert clock.working_delta(start, clock.add(start, span)) == span
    assert clock.between(start, clock.add(start, span)) == span.total_seconds()
    earlier = clock.subtract(start, span)
    assert earlier <= start
    assert clock.working_delta(earlier, start) == span
    if span > timedelta(0):
        assert clock.is_working(earlier)


@settings(max_examples=200, deadline=None)
@given(clock=CLOCKS, a=INSTANTS, b=INSTANTS, c=INSTANTS)
def test_between_is_additive(clock: WorkingHours, a: datetime, b: datetime, c: datetime) -> None:
    assert clock.working_delta(a, b) + clock.working_delta(b, c) == clock.working_delta(a, c)
    elapsed = b.astimezone(UTC) - a.astimezone(UTC)
    assert abs(clock.working_delta(a, b)) <= abs(elapsed)
