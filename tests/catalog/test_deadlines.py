"""Tests for working-day deadlines (catalog.deadlines)."""

from __future__ import annotations

import datetime
import zoneinfo
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalog.deadlines import DEFAULT_CALENDAR, WorkingCalendar

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
UTC = datetime.UTC


def local(text: str) -> datetime.datetime:
    """An Asia/Shanghai wall-clock time, e.g. '2026-11-20 10:00'."""
    return datetime.datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def end_of(day: str) -> datetime.datetime:
    """The last instant of a Shanghai local date, in UTC."""
    date = datetime.date.fromisoformat(day)
    return datetime.datetime.combine(date, datetime.time.max, tzinfo=SHANGHAI).astimezone(UTC)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "holidays.txt"
    path.write_text(text, encoding="utf-8")
    return path


GOLDEN_WEEK = """\
# 2026 国庆节: holidays Thursday 1 to Wednesday 7 October
2026-10-01..2026-10-07
+2026-09-27   # Sunday worked
+2026-10-10   # Saturday worked
"""


# --- counting ------------------------------------------------------------------------


def test_friday_plus_two_working_days_is_due_at_the_end_of_tuesday() -> None:
    due = DEFAULT_CALENDAR.add_working_days(local("2026-11-20 10:00"), 2)
    assert due == end_of("2026-11-24")
    assert due.tzinfo is UTC
    assert due.astimezone(SHANGHAI).time() == datetime.time(23, 59, 59, 999999)


@pytest.mark.parametrize("submitted", ["2026-11-21 09:00", "2026-11-22 23:30"])
def test_weekend_submissions_count_from_monday(submitted: str) -> None:
    assert DEFAULT_CALENDAR.add_working_days(local(submitted), 1) == end_of("2026-11-23")
    assert DEFAULT_CALENDAR.add_working_days(local(submitted), 2) == end_of("2026-11-24")


def test_a_submission_on_a_weekday_does_not_count_that_day() -> None:
    assert DEFAULT_CALENDAR.add_working_days(local("2026-11-23 00:01"), 1) == end_of("2026-11-24")


def test_a_holiday_inside_the_span_pushes_the_deadline() -> None:
    calendar = WorkingCalendar(holidays=frozenset({datetime.date(2026, 11, 24)}))
    assert calendar.add_working_days(local("2026-11-20 10:00"), 2) == end_of("2026-11-25")


def test_a_make_up_saturday_counts_as_a_working_day() -> None:
    calendar = WorkingCalendar(extra_working_days=frozenset({datetime.date(2026, 11, 21)}))
    assert calendar.is_working_day(datetime.date(2026, 11, 21))
    assert calendar.add_working_days(local("2026-11-20 10:00"), 2) == end_of("2026-11-23")


def test_golden_week_file_gives_the_due_date_of_a_ten_day_request(tmp_path: Path) -> None:
    calendar = WorkingCalendar.from_file(write(tmp_path, GOLDEN_WEEK))
    # Oct 1-7 off; 8, 9, 10 (make-up Saturday), 12-16, 19, 20 are working days 1..10.
    assert calendar.add_working_days(local("2026-09-30 16:00"), 10) == end_of("2026-10-20")
    assert calendar.is_working_day(datetime.date(2026, 9, 27))
    assert not calendar.is_working_day(datetime.date(2026, 10, 5))


def test_deadlines_are_counted_in_the_calendars_local_dates() -> None:
    submitted = datetime.datetime(2026, 11, 20, 17, 0, tzinfo=UTC)  # Saturday 01:00 Shanghai
    assert submitted.astimezone(SHANGHAI).weekday() == 5
    assert DEFAULT_CALENDAR.add_working_days(submitted, 1) == end_of("2026-11-23")
    assert DEFAULT_CALENDAR.working_days_between(submitted, local("2026-11-23 09:00")) == 1


def test_a_thursday_evening_in_utc_is_friday_in_shanghai() -> None:
    submitted = datetime.datetime(2026, 11, 19, 17, 0, tzinfo=UTC)  # Friday 01:00 Shanghai
    assert DEFAULT_CALENDAR.add_working_days(submitted, 1) == end_of("2026-11-23")
    utc_calendar = WorkingCalendar(timezone=zoneinfo.ZoneInfo("UTC"))
    assert utc_calendar.add_working_days(submitted, 1) == datetime.datetime.combine(
        datetime.date(2026, 11, 20), datetime.time.max, tzinfo=UTC
    )


def test_working_days_between_counts_how_overdue_a_request_is() -> None:
    due = DEFAULT_CALENDAR.add_working_days(local("2026-11-20 10:00"), 2)  # Tuesday
    assert DEFAULT_CALENDAR.working_days_between(due, local("2026-11-24 12:00")) == 0
    assert DEFAULT_CALENDAR.working_days_between(due, local("2026-11-27 12:00")) == 3
    assert DEFAULT_CALENDAR.working_days_between(due, local("2026-11-30 08:00")) == 4


def test_working_days_between_is_zero_when_the_end_is_not_later() -> None:
    later, earlier = local("2026-11-27 12:00"), local("2026-11-20 12:00")
    assert DEFAULT_CALENDAR.working_days_between(later, earlier) == 0
    assert DEFAULT_CALENDAR.working_days_between(later, later) == 0


# --- the holiday file ----------------------------------------------------------------


def test_holiday_file_ignores_comments_and_blank_lines(tmp_path: Path) -> None:
    calendar = WorkingCalendar.from_file(
        write(tmp_path, "\n# only a comment\n\n2026-12-25 # Fri\n")
    )
    assert calendar.holidays == frozenset({datetime.date(2026, 12, 25)})
    assert calendar.extra_working_days == frozenset()
    assert calendar.timezone == SHANGHAI


def test_holiday_file_takes_the_time_zone_to_count_in(tmp_path: Path) -> None:
    calendar = WorkingCalendar.from_file(write(tmp_path, ""), timezone="Asia/Urumqi")
    assert calendar.timezone == zoneinfo.ZoneInfo("Asia/Urumqi")


def test_a_bad_line_names_the_file_the_line_and_what_was_expected(tmp_path: Path) -> None:
    path = write(tmp_path, "# holidays\n2026-10-01\n2026/10/01\n")
    with pytest.raises(ValueError) as raised:
        WorkingCalendar.from_file(path)
    assert str(raised.value) == (
        f"{path}:3: expected YYYY-MM-DD, YYYY-MM-DD..YYYY-MM-DD or +YYYY-MM-DD, got '2026/10/01'"
    )


@pytest.mark.parametrize("line", ["2026-10-01..", "+2026-10-01..2026-10-03", "holiday", "+"])
def test_malformed_entries_are_rejected(tmp_path: Path, line: str) -> None:
    with pytest.raises(ValueError, match=r"holidays\.txt:1: expected YYYY-MM-DD"):
        WorkingCalendar.from_file(write(tmp_path, line + "\n"))


def test_a_date_that_does_not_exist_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"holidays\.txt:2: '2026-02-30' is not a calendar date"):
        WorkingCalendar.from_file(write(tmp_path, "2026-02-27\n2026-02-30\n"))


def test_a_range_ending_before_it_starts_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"holidays\.txt:1: range ends on 2026-10-01 before"):
        WorkingCalendar.from_file(write(tmp_path, "2026-10-07..2026-10-01\n"))


def test_a_date_cannot_be_both_holiday_and_make_up_day(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"holidays\.txt:2: 2026-10-03 is listed both"):
        WorkingCalendar.from_file(write(tmp_path, "2026-10-01..2026-10-07\n+2026-10-03\n"))
    day = datetime.date(2026, 10, 3)
    with pytest.raises(ValueError, match="both holidays and make-up working days: 2026-10-03"):
        WorkingCalendar(holidays=frozenset({day}), extra_working_days=frozenset({day}))


# --- arguments -----------------------------------------------------------------------


def test_a_naive_start_is_rejected() -> None:
    naive = datetime.datetime(2026, 11, 20, 10, 0)
    with pytest.raises(ValueError, match="start must be timezone-aware"):
        DEFAULT_CALENDAR.add_working_days(naive, 2)
    with pytest.raises(ValueError, match="end must be timezone-aware"):
        DEFAULT_CALENDAR.working_days_between(local("2026-11-20 10:00"), naive)


@pytest.mark.parametrize("days", [0, -1])
def test_fewer_than_one_working_day_is_rejected(days: int) -> None:
    with pytest.raises(ValueError, match="days must be at least 1"):
        DEFAULT_CALENDAR.add_working_days(local("2026-11-20 10:00"), days)


# --- properties ----------------------------------------------------------------------

DAYS_2026 = st.dates(min_value=datetime.date(2026, 1, 1), max_value=datetime.date(2026, 12, 31))


@st.composite
def calendars(draw: st.DrawFn) -> WorkingCalendar:
    holidays = draw(st.frozensets(DAYS_2026, max_size=60))
    weekends = DAYS_2026.filter(lambda day: day.weekday() >= 5 and day not in holidays)
    extra = draw(st.frozensets(weekends, max_size=10))
    zone = draw(st.sampled_from(["Asia/Shanghai", "UTC", "America/New_York", "Pacific/Kiritimati"]))
    return WorkingCalendar(holidays, extra, zoneinfo.ZoneInfo(zone))


starts = st.datetimes(
    min_value=datetime.datetime(2025, 12, 1),
    max_value=datetime.datetime(2026, 12, 31),
    timezones=st.sampled_from([UTC, SHANGHAI, zoneinfo.ZoneInfo("America/New_York")]),
)
counts = st.integers(min_value=1, max_value=60)


@given(calendars(), starts, counts)
def test_the_due_date_is_always_a_working_day(
    calendar: WorkingCalendar, start: datetime.datetime, days: int
) -> None:
    due = calendar.add_working_days(start, days)
    assert calendar.is_working_day(due.astimezone(calendar.timezone).date())
    assert due > start


@given(calendars(), starts, counts)
def test_the_days_between_start_and_deadline_are_the_days_allowed(
    calendar: WorkingCalendar, start: datetime.datetime, days: int
) -> None:
    assert calendar.working_days_between(start, calendar.add_working_days(start, days)) == days


@given(calendars(), starts, counts, counts)
def test_more_working_days_never_give_an_earlier_deadline(
    calendar: WorkingCalendar, start: datetime.datetime, days: int, more: int
) -> None:
    assert calendar.add_working_days(start, days + more) > calendar.add_working_days(start, days)
