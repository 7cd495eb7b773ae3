"""Working days in mainland China: weekends, public holidays and the make-up working days (调休).

The simulators shape loads by them; the platform counts the publication (公示) window in them
(:func:`add_working_days`). Both read this one table.

Source: State Council General Office notices on public holiday arrangements
(国务院办公厅关于…年部分节假日安排的通知) for 2024 (2023-10-25), 2025 (2024-11-12) and 2026
(2025-11-04). Years outside the table use weekends only and the fixed-date holidays.
"""

from __future__ import annotations

from datetime import date, timedelta


def _span(first: str, last: str) -> set[date]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return {start + timedelta(days=i) for i in range((end - start).days + 1)}


HOLIDAYS: dict[int, set[date]] = {
    2024: _span("2024-01-01", "2024-01-01")
    | _span("2024-02-10", "2024-02-17")
    | _span("2024-04-04", "2024-04-06")
    | _span("2024-05-01", "2024-05-05")
    | _span("2024-06-10", "2024-06-10")
    | _span("2024-09-15", "2024-09-17")
    | _span("2024-10-01", "2024-10-07"),
    2025: _span("2025-01-01", "2025-01-01")
    | _span("2025-01-28", "2025-02-04")
    | _span("2025-04-04", "2025-04-06")
    | _span("2025-05-01", "2025-05-05")
    | _span("2025-05-31", "2025-06-02")
    | _span("2025-10-01", "2025-10-08"),
    2026: _span("2026-01-01", "2026-01-03")
    | _span("2026-02-15", "2026-02-23")
    | _span("2026-04-04", "2026-04-06")
    | _span("2026-05-01", "2026-05-05")
    | _span("2026-06-19", "2026-06-21")
    | _span("2026-09-25", "2026-09-27")
    | _span("2026-10-01", "2026-10-07"),
}
MAKEUP_WORKDAYS: dict[int, set[date]] = {
    2024: {
        date.fromisoformat(d)
        for d in (
            "2024-02-04",
            "2024-02-18",
            "2024-04-07",
            "2024-04-28",
            "2024-05-11",
            "2024-09-14",
            "2024-09-29",
            "2024-10-12",
        )
    },
    2025: {date.fromisoformat(d) for d in ("2025-01-26", "2025-02-08", "2025-04-27", "2025-09-28", "2025-10-11")},
    2026: {
        date.fromisoformat(d)
        for d in ("2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10")
    },
}
_FIXED = {(1, 1), (5, 1), (10, 1), (10, 2), (10, 3)}


def is_holiday(day: date) -> bool:
    if day.year in HOLIDAYS:
        return day in HOLIDAYS[day.year]
    return (day.month, day.day) in _FIXED


def is_workday(day: date) -> bool:
    """True on a working day: Monday-Friday that is no holiday, or a make-up working day."""
    if day in MAKEUP_WORKDAYS.get(day.year, set()):
        return True
    return day.weekday() < 5 and not is_holiday(day)


def add_working_days(start: date, days: int) -> date:
    """The ``days``-th working day after ``start`` (``start`` itself not counted): a window of N working
    days opened on ``start`` ends on this day. ``days`` = 0 gives ``start``.

    >>> add_working_days(date(2026, 9, 30), 1)  # National Day holiday 1-7 Oct, so the next is the 8th
    datetime.date(2026, 10, 8)
    >>> add_working_days(date(2026, 10, 9), 1)  # Saturday 10 Oct is a make-up working day
    datetime.date(2026, 10, 10)
    """
    if days < 0:
        raise ValueError(f"a number of working days is not negative: {days}")
    day = start
    for _ in range(days):
        day += timedelta(days=1)
        while not is_workday(day):
            day += timedelta(days=1)
    return day


def spring_festival_days(year: int) -> set[date]:
    """The Spring Festival holiday of ``year`` when the table has it (the longest holiday span)."""
    days = sorted(HOLIDAYS.get(year, set()))
    runs: list[list[date]] = []
    for day in days:
        if runs and day - runs[-1][-1] == timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    spring: list[list[date]] = [r for r in runs if r[0].month in (1, 2)]
    if not spring:
        return set()
    longest: list[date] = max(spring, key=len)
    return set(longest)
