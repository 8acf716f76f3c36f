"""Checks every batch of bars before anything is written.

Policy (one ticker's batch at a time, nothing is written until it passes):

- Rejected, the whole batch of that ticker (a `ValidationError`, which is a
  `TickerError`; what is already stored stays untouched):
  missing column, unparseable date, duplicate date, date that is not an exchange session,
  missing (NaN) open/high/low/close/adj_close/volume, non-positive open/high/low/close/
  adj_close, negative volume.
  These mean the feed is broken or misaligned; storing part of it would leave gaps or
  wrong bars that later look legitimate. A row with a missing or non-positive close is
  therefore never stored.
- Repaired and reported as a warning, never dropped: High below max(Open, Close) or Low
  above min(Open, Close). Real Yahoo data contains such bars (prints outside the
  consolidated high/low); the close is right, so the bar is kept and High/Low are widened
  to envelop Open and Close. (The bundled TSLA series has none.)

Every problem names ticker, date and rule: "TSLA 2020-07-31: duplicate date (2 rows)".
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from job.calendar import Sessions
from job.errors import TickerError
from job.sources.base import COLUMNS

PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close")

# Rule names, as they appear in messages.
MISSING_COLUMN = "missing column"
UNPARSEABLE_DATE = "unparseable date"
DUPLICATE_DATE = "duplicate date"
NOT_A_SESSION = "not an exchange session"
MISSING_VALUE = "missing value"
NON_POSITIVE_PRICE = "non-positive price"
NEGATIVE_VOLUME = "negative volume"
HIGH_BELOW_BODY = "high below open/close"
LOW_ABOVE_BODY = "low above open/close"

#: How many problems a one-line error shows; all of them are on `ValidationError.problems`.
SHOWN = 3


@dataclass(frozen=True)
class Problem:
    ticker: str
    date: str
    rule: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.ticker} {self.date}: {self.rule}" + (f" ({self.detail})" if self.detail else "")


class ValidationError(TickerError):
    """A batch that must not be stored; the message shows the first problems on one line."""

    def __init__(self, ticker: str, problems: list[Problem], origin: str | None = None) -> None:
        shown = "; ".join(str(p).removeprefix(f"{ticker} ") for p in problems[:SHOWN])
        more = f"; and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        where = f"{origin}: " if origin else ""
        super().__init__(ticker, f"{where}rejected {shown}{more}")
        self.problems = problems
        self.origin = origin


@dataclass
class Validated:
    """The batch ready to write (High/Low repaired) and the warnings about it."""

    frame: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


def validate(frame: pd.DataFrame, ticker: str, sessions: Sessions, *, origin: str | None = None) -> Validated:
    """Apply the policy above; raise `ValidationError` or return the repaired batch."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValidationError(ticker, [Problem(ticker, "-", MISSING_COLUMN, ", ".join(missing))], origin)
    frame = frame.loc[:, list(COLUMNS)].reset_index(drop=True)
    if frame.empty:
        return Validated(frame)
    problems: list[Problem] = []
    dates = list(frame["date"])
    labels = [d.isoformat() if isinstance(d, dt.date) else repr(d) for d in dates]

    is_date = np.array([isinstance(d, dt.date) and not isinstance(d, dt.datetime) for d in dates])
    for i in np.flatnonzero(~is_date):
        problems.append(Problem(ticker, f"row {i + 1}", UNPARSEABLE_DATE, labels[i]))

    good = [d for d, ok in zip(dates, is_date, strict=True) if ok]
    if good:
        unique = set(good)
        if len(unique) != len(good):
            counts = Counter(good)
            for day in sorted(d for d, n in counts.items() if n > 1):
                problems.append(Problem(ticker, day.isoformat(), DUPLICATE_DATE, f"{counts[day]} rows"))
        valid = set(sessions.sessions_in_range(min(good), max(good)))
        for day in sorted(unique - valid):
            problems.append(Problem(ticker, day.isoformat(), NOT_A_SESSION, f"{sessions.name} is closed"))

    values = {c: frame[c].to_numpy(dtype="float64", na_value=np.nan) for c in COLUMNS[1:]}
    for column, array in values.items():
        for i in np.flatnonzero(np.isnan(array)):
            problems.append(Problem(ticker, labels[i], MISSING_VALUE, column))
    for column in PRICE_COLUMNS:
        array = values[column]
        for i in np.flatnonzero(array <= 0):
            problems.append(Problem(ticker, labels[i], NON_POSITIVE_PRICE, f"{column}={array[i]:g}"))
    for i in np.flatnonzero(values["volume"] < 0):
        problems.append(Problem(ticker, labels[i], NEGATIVE_VOLUME, f"volume={values['volume'][i]:g}"))
    if problems:
        raise ValidationError(ticker, problems, origin)

    warnings: list[str] = []
    o, h, l, c = values["open"], values["high"], values["low"], values["close"]  # noqa: E741
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    for i in np.flatnonzero(h < top):
        warnings.append(
            str(Problem(ticker, labels[i], HIGH_BELOW_BODY, f"high {h[i]:g} raised to {top[i]:g}"))
        )
    for i in np.flatnonzero(l > bottom):
        warnings.append(
            str(Problem(ticker, labels[i], LOW_ABOVE_BODY, f"low {l[i]:g} lowered to {bottom[i]:g}"))
        )
    if warnings:
        frame = frame.assign(high=np.maximum(h, top), low=np.minimum(l, bottom))
    return Validated(frame, warnings)
