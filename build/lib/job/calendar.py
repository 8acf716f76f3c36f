"""Exchange sessions from `exchange_calendars`, with plain `datetime.date` in and out.

Business days (`BDay`) know nothing of holidays, half days or the 2012 hurricane closure,
so every "next session" or "is this bar closed yet" question in nightcast comes here. The
library's default window is only the last 20 years; nightcast asks for a deep start so
that histories going back decades (new tickers are fetched from `history_start`) work.
"""

from __future__ import annotations

import bisect
import datetime as dt
import warnings
from functools import lru_cache

import exchange_calendars as xcals
import pandas as pd

from job.errors import NightcastError

DEEP_START = dt.date(1990, 1, 1)

# exchange_calendars 4.x still calls a pandas API that pandas 3 deprecates; the warning is
# about the library's internals, says nothing actionable to a user, and would print on
# every command.
warnings.filterwarnings("ignore", message="Series.values returning an ndarray that drops timezone")


class Sessions:
    """The trading sessions of one exchange. Session labels are dates; closes are UTC datetimes."""

    def __init__(self, name: str = "XNYS", start: dt.date = DEEP_START) -> None:
        try:
            self._cal = xcals.get_calendar(name, start=pd.Timestamp(start))
        except xcals.errors.InvalidCalendarName:
            raise NightcastError(f"unknown exchange calendar {name!r} (e.g. XNYS, XLON, XTKS)") from None
        except ValueError:  # some calendars are not defined that far back (XTKS from 1997)
            bound = xcals.get_calendar(name).bound_min()
            self._cal = xcals.get_calendar(name, start=bound)
        self.name = name
        self.first = self._cal.first_session.date()
        self.last = self._cal.last_session.date()
        # Plain-date copies: membership and range queries run per ticker every night, and
        # bisect on a list is ~100x cheaper than a pandas round trip.
        self._days = [ts.date() for ts in self._cal.sessions]
        self._day_set = frozenset(self._days)

    def __repr__(self) -> str:
        return f"Sessions({self.name!r}, {self.first}..{self.last})"

    def _label(self, day: dt.date) -> pd.Timestamp:
        if isinstance(day, dt.datetime):  # a datetime is a moment, not a session label
            raise TypeError("pass a datetime.date, not a datetime")
        if not self.first <= day <= self.last:
            raise NightcastError(f"{day} is outside the {self.name} calendar ({self.first}..{self.last})")
        return pd.Timestamp(day)

    def is_session(self, day: dt.date) -> bool:
        self._label(day)
        return day in self._day_set

    def next_session(self, day: dt.date) -> dt.date:
        """The first session strictly after `day`, which need not be a session itself."""
        label = self._label(day)
        if self._cal.is_session(label):
            return self._cal.next_session(label).date()
        return self._cal.date_to_session(label, direction="next").date()

    def previous_session(self, day: dt.date) -> dt.date:
        """The last session strictly before `day`, which need not be a session itself."""
        label = self._label(day)
        if self._cal.is_session(label):
            return self._cal.previous_session(label).date()
        return self._cal.date_to_session(label, direction="previous").date()

    def sessions_in_range(self, start: dt.date, end: dt.date) -> list[dt.date]:
        """Sessions with start <= session <= end (both inclusive); empty when start > end."""
        if start > end:
            return []
        return self._days[bisect.bisect_left(self._days, start) : bisect.bisect_right(self._days, end)]

    def session_close(self, day: dt.date) -> dt.datetime:
        """When the session's daily bar is final (tz-aware UTC; half days close early)."""
        label = self._label(day)
        if not self._cal.is_session(label):
            raise NightcastError(f"{day} is not a {self.name} session")
        return self._cal.session_close(label).to_pydatetime()

    def last_closed_session(self, now: dt.datetime) -> dt.date:
        """The latest session whose close is <= `now`: the newest bar that may be stored."""
        if now.tzinfo is None:
            raise TypeError("now must be timezone-aware")
        # Start one day ahead of now's UTC date: exchanges east of UTC label sessions ahead of it.
        candidate = min(now.astimezone(dt.timezone.utc).date() + dt.timedelta(days=1), self.last)
        if not self.is_session(candidate):
            candidate = self.previous_session(candidate)
        while self.session_close(candidate) > now:
            candidate = self.previous_session(candidate)
        return candidate


@lru_cache(maxsize=8)
def get_sessions(name: str = "XNYS") -> Sessions:
    """Building a calendar takes ~0.1 s; one instance per exchange serves the whole process."""
    return Sessions(name)
