"""The State Council holiday calendar and working-day arithmetic (the 公示 window counts in it)."""

from __future__ import annotations

from datetime import date

import pytest

from park.holidays import add_working_days, is_workday, spring_festival_days


def test_holidays_and_makeup_days():
    """State Council 2026: 1-7 Oct off, Saturday 10 Oct worked; Spring Festival 15-23 Feb."""
    assert not is_workday(date(2026, 10, 1))
    assert is_workday(date(2026, 10, 10))  # a Saturday made a working day
    assert not is_workday(date(2026, 10, 11))  # an ordinary Sunday
    assert spring_festival_days(2026) == {date(2026, 2, d) for d in range(15, 24)}


def test_adding_working_days_skips_weekends_and_holidays_and_counts_makeup_days():
    # Counted by hand on the 2026 notice: Fri 30 Jan → Mon 2, Tue 3, Wed 4, Thu 5, Fri 6 Feb.
    assert add_working_days(date(2026, 1, 30), 5) == date(2026, 2, 6)
    # Spring Festival 15-23 Feb off, Sat 14 Feb and Sat 28 Feb worked: from Fri 13 Feb, 5 working days
    # are Sat 14, Tue 24, Wed 25, Thu 26, Fri 27 Feb.
    assert add_working_days(date(2026, 2, 13), 5) == date(2026, 2, 27)
    # National Day: from Tue 29 Sep 2026 → Wed 30 Sep, Thu 8, Fri 9, Sat 10 (make-up), Mon 12 Oct.
    assert add_working_days(date(2026, 9, 29), 5) == date(2026, 10, 12)
    assert add_working_days(date(2026, 3, 2), 0) == date(2026, 3, 2)


def test_a_negative_number_of_working_days_is_refused():
    with pytest.raises(ValueError, match="not negative"):
        add_working_days(date(2026, 3, 2), -1)
