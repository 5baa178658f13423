"""Working-day deadlines for access requests: weekends, holidays and make-up days (调休).

Deadlines are counted in local dates of the calendar's time zone (Asia/Shanghai by
default): a request is due at the end of the n-th working day after the day it was
submitted on.

Holiday file format (UTF-8 text, one entry per line)::

    # 2026 National Day (国庆节)
    2026-10-01..2026-10-07   # an inclusive range of holidays
    2026-12-25               # a single holiday
    +2026-09-27              # a make-up working day (a Saturday or Sunday worked)

``#`` starts a comment; blank lines are ignored. A malformed line, a range whose end is
before its start, or a date listed both as a holiday and as a make-up working day raises
``ValueError`` naming the file and the line number.
"""

from __future__ import annotations

import datetime
import re
import zoneinfo
from dataclasses import dataclass
from pathlib import Path

_SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
_DATE = r"([0-9]{4}-[0-9]{2}-[0-9]{2})"
_ENTRY = re.compile(rf"(?P<extra>\+)?{_DATE}(?:\.\.{_DATE})?")
_EXPECTED = "expected YYYY-MM-DD, YYYY-MM-DD..YYYY-MM-DD or +YYYY-MM-DD"
_ONE_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class WorkingCalendar:
    """Working days: Monday-Friday, minus holidays, plus make-up working days.

    A make-up working day (调休) is a Saturday or Sunday declared a working day, common
    in China around public holidays.

    Attributes:
        holidays: Dates that are not working days even if they fall on a weekday.
        extra_working_days: Dates that are working days even on a weekend.
        timezone: The zone whose local dates deadlines are counted in.
    """

    holidays: frozenset[datetime.date] = frozenset()
    extra_working_days: frozenset[datetime.date] = frozenset()
    timezone: zoneinfo.ZoneInfo = _SHANGHAI

    def __post_init__(self) -> None:
        both = self.holidays & self.extra_working_days
        if both:
            listed = ", ".join(day.isoformat() for day in sorted(both))
            raise ValueError(f"dates are both holidays and make-up working days: {listed}")

    @classmethod
    def from_file(cls, path: Path, timezone: str = "Asia/Shanghai") -> WorkingCalendar:
        """Reads a holiday file (format in the module docstring).

        Args:
            path: The UTF-8 holiday file.
            timezone: IANA name of the zone whose local dates deadlines are counted in.

        Returns:
            The calendar the file describes.

        Raises:
            ValueError: A line is malformed, a range is reversed, or a date is listed
                both as a holiday and as a make-up working day.
        """
        holidays: set[datetime.date] = set()
        extra: set[datetime.date] = set()
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            where = f"{path}:{number}"
            match = _ENTRY.fullmatch(entry)
            if match is None or (match["extra"] and match[3]):
                raise ValueError(f"{where}: {_EXPECTED}, got {entry!r}")
            first = _parse_date(match[2], where)
            last = _parse_date(match[3], where) if match[3] else first
            if last < first:
                raise ValueError(f"{where}: range ends on {last} before it starts on {first}")
            days = {first + _ONE_DAY * i for i in range((last - first).days + 1)}
            target, other = (extra, holidays) if match["extra"] else (holidays, extra)
            if days & other:
                clash = min(days & other)
                raise ValueError(
                    f"{where}: {clash} is listed both as a holiday and as a make-up working day"
                )
            target.update(days)
        return cls(frozenset(holidays), frozenset(extra), zoneinfo.ZoneInfo(timezone))

    def is_working_day(self, day: datetime.date) -> bool:
        """Tells whether ``day`` is a working day in this calendar."""
        if day in self.extra_working_days:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5  # Monday=0 .. Friday=4

    def add_working_days(self, start: datetime.datetime, days: int) -> datetime.datetime:
        """Returns the deadline ``days`` working days after ``start``.

        The count starts the day after the local date of ``start``, so a request
        submitted on a Friday or over the weekend has Monday as its first working day.

        Args:
            start: When the clock starts; must be timezone-aware.
            days: Number of working days allowed; at least 1.

        Returns:
            The last instant (23:59:59.999999 local) of the ``days``-th working day,
            as an aware UTC datetime.

        Raises:
            ValueError: ``start`` is naive or ``days`` is less than 1.
        """
        if days < 1:
            raise ValueError(f"days must be at least 1, got {days}")
        day = self._local_date(start, "start")
        remaining = days
        while remaining:
            day += _ONE_DAY
            if self.is_working_day(day):
                remaining -= 1
        end_of_day = datetime.datetime.combine(day, datetime.time.max, tzinfo=self.timezone)
        return end_of_day.astimezone(datetime.UTC)

    def working_days_between(self, start: datetime.datetime, end: datetime.datetime) -> int:
        """Counts working days after the local date of ``start`` up to that of ``end``.

        Used to show how overdue a request is: the result is the number of working days
        ``d`` with ``local_date(start) < d <= local_date(end)``, and 0 when ``end`` is not
        on a later local date than ``start``.

        Args:
            start: Beginning of the span; must be timezone-aware.
            end: End of the span; must be timezone-aware.

        Returns:
            The number of working days in the span.

        Raises:
            ValueError: ``start`` or ``end`` is naive.
        """
        day = self._local_date(start, "start")
        last = self._local_date(end, "end")
        count = 0
        while day < last:
            day += _ONE_DAY
            if self.is_working_day(day):
                count += 1
        return count

    def _local_date(self, moment: datetime.datetime, name: str) -> datetime.date:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")
        return moment.astimezone(self.timezone).date()


def _parse_date(text: str, where: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a calendar date") from None


DEFAULT_CALENDAR = WorkingCalendar()
"""Monday-Friday in Asia/Shanghai with no holidays; use a holiday file in production."""
