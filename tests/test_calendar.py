"""Exchange sessions: holidays and weekends, closes in UTC, deep history, closed-bar cut-off."""

import datetime as dt

import pytest

from job.errors import NightcastError
from job.support.calendar import Sessions, get_sessions

UTC = dt.UTC


@pytest.fixture(scope="module")
def xnys() -> Sessions:
    return get_sessions("XNYS")


def test_next_session_skips_weekends_and_holidays(xnys: Sessions) -> None:
    assert xnys.next_session(dt.date(2020, 7, 31)) == dt.date(2020, 8, 3)  # Friday -> Monday
    assert xnys.next_session(dt.date(2020, 8, 1)) == dt.date(2020, 8, 3)  # from a Saturday
    assert xnys.next_session(dt.date(2020, 7, 2)) == dt.date(2020, 7, 6)  # July 3rd observed
    assert not xnys.is_session(dt.date(2012, 10, 29))  # hurricane Sandy: BDay gets this wrong


def test_deep_history_beyond_the_default_twenty_years(xnys: Sessions) -> None:
    assert xnys.is_session(dt.date(1995, 7, 3))
    assert not xnys.is_session(dt.date(1995, 7, 4))
    assert xnys.next_session(dt.date(1995, 7, 3)) == dt.date(1995, 7, 5)
    days = xnys.sessions_in_range(dt.date(1995, 1, 1), dt.date(1995, 12, 31))
    assert len(days) == 252 and all(type(d) is dt.date for d in days)


def test_sessions_in_range_is_inclusive_and_matches_the_real_series(xnys: Sessions) -> None:
    days = xnys.sessions_in_range(dt.date(2010, 6, 29), dt.date(2020, 7, 31))
    assert len(days) == 2541 and days[0] == dt.date(2010, 6, 29) and days[-1] == dt.date(2020, 7, 31)
    assert xnys.sessions_in_range(dt.date(2020, 8, 1), dt.date(2020, 8, 2)) == []
    assert xnys.sessions_in_range(dt.date(2020, 8, 3), dt.date(2020, 8, 1)) == []


def test_closes_are_utc_and_half_days_close_early(xnys: Sessions) -> None:
    close = xnys.session_close(dt.date(2020, 7, 31))
    assert close == dt.datetime(2020, 7, 31, 20, 0, tzinfo=UTC)
    assert xnys.session_close(dt.date(2019, 11, 29)) == dt.datetime(2019, 11, 29, 18, 0, tzinfo=UTC)
    with pytest.raises(NightcastError, match="not a XNYS session"):
        xnys.session_close(dt.date(2020, 8, 1))


def test_last_closed_session_only_counts_bars_that_are_final(xnys: Sessions) -> None:
    before_close = dt.datetime(2020, 7, 31, 19, 59, tzinfo=UTC)
    assert xnys.last_closed_session(before_close) == dt.date(2020, 7, 30)
    assert xnys.last_closed_session(dt.datetime(2020, 7, 31, 20, 0, tzinfo=UTC)) == dt.date(2020, 7, 31)
    weekend = dt.datetime(2020, 8, 2, 12, 0, tzinfo=UTC)
    assert xnys.last_closed_session(weekend) == dt.date(2020, 7, 31)
    new_york_evening = dt.datetime(2020, 8, 1, 1, 0, tzinfo=UTC)  # still Friday in New York
    assert xnys.last_closed_session(new_york_evening) == dt.date(2020, 7, 31)
    with pytest.raises(TypeError):
        xnys.last_closed_session(dt.datetime(2020, 7, 31, 21))


def test_an_exchange_east_of_utc() -> None:
    tokyo = get_sessions("XTKS")
    # 2020-08-03 closes 06:00 UTC (15:00 JST); at 07:00 UTC that Monday it is final.
    assert tokyo.last_closed_session(dt.datetime(2020, 8, 3, 7, 0, tzinfo=UTC)) == dt.date(2020, 8, 3)
    assert tokyo.last_closed_session(dt.datetime(2020, 8, 3, 1, 0, tzinfo=UTC)) == dt.date(2020, 7, 31)


def test_errors_are_clear_and_instances_are_cached() -> None:
    assert get_sessions("XNYS") is get_sessions("XNYS")
    with pytest.raises(NightcastError, match="unknown exchange calendar"):
        Sessions("NOPE")
    with pytest.raises(NightcastError, match="outside the XNYS calendar"):
        get_sessions("XNYS").is_session(dt.date(1980, 1, 2))
