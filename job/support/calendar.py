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
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import exchange_calendars as xcals
import pandas as pd

from job.errors import NightcastError, quote

DEEP_START = dt.date(1990, 1, 1)

# exchange_calendars 4.x still calls a pandas API that pandas 3 deprecates; the warning is
# about the library's internals, says nothing actionable to a user, and would print on
# every command.
warnings.filterwarnings("ignore", message="Series.values returning an ndarray that drops timezone")
warnings.filterwarnings("ignore", message="DatetimeIndex.weekday is deprecated")  # XHKG's rules


class Sessions:
    """The trading sessions of one exchange. Session labels are dates; closes are UTC datetimes."""

    def __init__(self, name: str = "XNYS", start: dt.date = DEEP_START) -> None:
        try:
            try:
                self._cal = xcals.get_calendar(name, start=pd.Timestamp(start))
            except ValueError:  # some are not defined that far back (XTKS from 1997)
                self._cal = xcals.get_calendar(name, start=xcals.get_calendar(name).bound_min())
        except xcals.errors.InvalidCalendarName:
            raise NightcastError(f"unknown exchange calendar {quote(name)} (e.g. XNYS, XLON, XTKS)") from None
        except Exception as exc:  # a few listed calendars cannot be built at all (XTAE, XBEL)
            raise NightcastError(
                f"exchange calendar {quote(name)} cannot be used ({type(exc).__name__})"
            ) from None
        self.name = name
        self.first = self._cal.first_session.date()
        self.last = self._cal.last_session.date()
        # Plain-Python copies: these questions are asked per ticker every night (and per
        # session in a backfill), and bisect on a list is ~100x cheaper than a pandas call.
        self._days = [ts.date() for ts in self._cal.sessions]
        self._day_set = frozenset(self._days)
        self._closes: list[dt.datetime] = list(self._cal.closes.dt.to_pydatetime())

    def __repr__(self) -> str:
        return f"Sessions({self.name!r}, {self.first}..{self.last})"

    def _check(self, day: dt.date) -> None:
        if isinstance(day, dt.datetime):  # a datetime is a moment, not a session label
            raise TypeError("pass a datetime.date, not a datetime")
        if not self.first <= day <= self.last:
            raise NightcastError(f"{day} is outside the {self.name} calendar ({self.first}..{self.last})")

    def is_session(self, day: dt.date) -> bool:
        self._check(day)
        return day in self._day_set

    def next_session(self, day: dt.date) -> dt.date:
        """The first session strictly after `day`, which need not be a session itself."""
        self._check(day)
        i = bisect.bisect_right(self._days, day)
        if i == len(self._days):
            raise NightcastError(f"no {self.name} session after {day} in the calendar")
        return self._days[i]

    def sessions_in_range(self, start: dt.date, end: dt.date) -> list[dt.date]:
        """Sessions with start <= session <= end (both inclusive); empty when start > end."""
        if start > end:
            return []
        return self._days[bisect.bisect_left(self._days, start) : bisect.bisect_right(self._days, end)]

    def session_close(self, day: dt.date) -> dt.datetime:
        """When the session's daily bar is final (tz-aware UTC; half days close early)."""
        if not self.is_session(day):
            raise NightcastError(f"{day} is not a {self.name} session")
        return self._closes[bisect.bisect_left(self._days, day)]

    def last_closed_session(self, now: dt.datetime) -> dt.date:
        """The latest session whose close is <= `now`: the newest bar that may be stored."""
        if now.tzinfo is None:
            raise TypeError("now must be timezone-aware")
        i = bisect.bisect_right(self._closes, now)
        if i == 0:
            raise NightcastError(f"no {self.name} session has closed by {now.isoformat()}")
        if i == len(self._closes) and now.date() > self.last:  # later sessions are unknown to it
            raise NightcastError(
                f"the {self.name} calendar ends on {self.last}: update exchange_calendars for later sessions"
            )
        return self._days[i - 1]


@lru_cache(maxsize=64)
def get_sessions(name: str = "XNYS") -> Sessions:
    """Building a calendar takes ~0.1 s; one instance per exchange serves the whole process."""
    return Sessions(name)


#: Yahoo's ticker suffix -> the exchange's calendar: the default for tickers carrying it.
SUFFIX_CALENDARS = {
    ".AS": "XAMS", ".AX": "XASX", ".BO": "XBOM", ".BR": "XBRU", ".CO": "XCSE", ".DE": "XETR",
    ".F": "XFRA", ".HE": "XHEL", ".HK": "XHKG", ".IR": "XDUB", ".IS": "XIST", ".JO": "XJSE",
    ".KS": "XKRX", ".L": "XLON", ".LS": "XLIS", ".MC": "XMAD", ".MI": "XMIL", ".MX": "XMEX",
    ".NZ": "XNZE", ".OL": "XOSL", ".PA": "XPAR", ".SA": "BVMF", ".SI": "XSES", ".SS": "XSHG",
    ".ST": "XSTO", ".SW": "XSWX", ".SZ": "XSHG", ".T": "XTKS", ".TO": "XTSE", ".TW": "XTAI",
    ".VI": "XWBO", ".WA": "XWAR",
}  # fmt: skip


@dataclass(frozen=True)
class Calendars:
    """Which exchange's sessions each ticker follows: validation, the sessions it is
    forecast for, catch-up and the schedule all ask here. A ticker configured by name wins,
    then its Yahoo suffix (AET.L -> XLON, 4063.T -> XTKS), then the deployment's default."""

    default: str = "XNYS"
    by_ticker: Mapping[str, str] = field(default_factory=dict)

    def name(self, ticker: str) -> str:
        if ticker in self.by_ticker:
            return self.by_ticker[ticker]
        dot = ticker.rfind(".")
        return SUFFIX_CALENDARS.get(ticker[dot:], self.default) if dot > 0 else self.default

    def __call__(self, ticker: str) -> Sessions:
        return get_sessions(self.name(ticker))
