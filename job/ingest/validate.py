"""Checks every batch of bars before anything is written.

Policy (one ticker's batch at a time, nothing is written until it passes):

- Rejected, the whole batch of that ticker (a `ValidationError`, which is a `Refused`
  ticker error; what is already stored stays untouched):
  missing column, unparseable date, duplicate date, date that is not an exchange session,
  missing (NaN) open/high/low/close/adj_close/volume, a value that is not finite (inf), a
  non-positive price, a price above MAX_PRICE, a negative volume or one above MAX_VOLUME.
  These mean the feed is broken or misaligned; storing part of it would leave gaps or
  wrong bars that later look legitimate. A row with a missing or non-positive close is
  therefore never stored.
- Repaired and reported as a warning, never dropped: High below max(Open, Close) or Low
  above min(Open, Close). Real Yahoo data contains such bars (prints outside the
  consolidated high/low); the close is right, so the bar is kept and High/Low are widened
  to envelop Open and Close. (The bundled TSLA series has none.)
- Stored as served, with a warning: sessions of the exchange missing between the batch's
  first and last bar (a halt, or a feed that skipped a bar).

Every problem names ticker, date and rule: "TSLA 2020-07-31: duplicate date (2 rows)".
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from job.errors import Refused, quote
from job.ingest.sources.base import FRAME_COLUMNS, VALUE_COLUMNS, Bars
from job.support.calendar import Sessions

PRICE_COLUMNS = VALUE_COLUMNS[:-1]  # all but volume

# Rule names, as they appear in messages.
MISSING_COLUMN = "missing column"
UNPARSEABLE_DATE = "unparseable date"
NOT_A_NUMBER = "not a number"
DUPLICATE_DATE = "duplicate date"
NOT_A_SESSION = "not an exchange session"
MISSING_VALUE = "missing value"
NON_POSITIVE_PRICE = "non-positive price"
NOT_FINITE = "not a finite number"
PRICE_OUT_OF_RANGE = "price out of range"
NEGATIVE_VOLUME = "negative volume"
VOLUME_OUT_OF_RANGE = "volume out of range"
HIGH_BELOW_BODY = "high below open/close"
LOW_ABOVE_BODY = "low above open/close"

#: No real quote comes near these (the dearest share trades below 1e6, the busiest ticker's
#: daily volume below 1e12); anything above is a unit or parsing error. Volumes must also fit
#: the BIGINT column.
MAX_PRICE = 1e9
MAX_VOLUME = 1e15


@dataclass(frozen=True)
class Problem:
    ticker: str
    date: str
    rule: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.ticker} {self.date}: {self.rule}" + (f" ({self.detail})" if self.detail else "")


class ValidationError(Refused):
    """A batch that must not be stored; all its problems are on `problems`."""

    def __init__(
        self,
        ticker: str,
        problems: list[Problem],
        origin: str | None = None,
        span: tuple[dt.date, dt.date] | None = None,
    ) -> None:
        reasons = [str(p).removeprefix(f"{ticker} ") for p in problems]
        super().__init__(ticker, "rejected", reasons, origin, span)
        self.problems = problems


@dataclass
class Validated:
    """The batch ready to write (High/Low repaired) and the warnings about it."""

    bars: Bars
    warnings: list[str] = field(default_factory=list)


def _label(day: object) -> str:
    return day.isoformat() if isinstance(day, dt.date) else quote(day)


def validate(frame: pd.DataFrame, ticker: str, calendar: Sessions, *, origin: str | None = None) -> Validated:
    """Apply the policy above; raise `ValidationError` or return the repaired batch."""
    missing = [c for c in FRAME_COLUMNS if c not in frame.columns]
    if missing:
        raise ValidationError(ticker, [Problem(ticker, "-", MISSING_COLUMN, ", ".join(missing))], origin)
    dates = np.asarray(frame["date"].to_numpy(), dtype=object)
    values = np.column_stack([frame[c].to_numpy(dtype="float64", na_value=np.nan) for c in VALUE_COLUMNS])
    bars = Bars(dates, values)
    if not len(bars):
        return Validated(bars)
    problems: list[Problem] = []
    missing: list[dt.date] = []

    if set(map(type, dates)) == {dt.date}:  # every source's normal case, at C speed
        is_date = np.ones(len(dates), dtype=bool)
    else:
        is_date = np.array([isinstance(d, dt.date) and not isinstance(d, dt.datetime) for d in dates])
    for i in np.flatnonzero(~is_date):
        problems.append(Problem(ticker, f"row {i + 1}", UNPARSEABLE_DATE, _label(dates[i])))

    good = list(dates[is_date])
    span = (min(good), max(good)) if good else None
    if good:
        unique = set(good)
        if len(unique) != len(good):
            counts = Counter(good)
            for day in sorted(d for d, n in counts.items() if n > 1):
                problems.append(Problem(ticker, day.isoformat(), DUPLICATE_DATE, f"{counts[day]} rows"))
        valid = set(calendar.sessions_in_range(min(good), max(good)))
        for day in sorted(unique - valid):
            problems.append(Problem(ticker, day.isoformat(), NOT_A_SESSION, f"{calendar.name} is closed"))
        missing = sorted(valid - unique)

    problems += _value_problems(ticker, dates, values)
    if problems:
        raise ValidationError(ticker, problems, origin, span)

    warnings: list[str] = []
    if missing:  # a halt, or a feed that skipped bars: stored as served, but said
        shown = ", ".join(d.isoformat() for d in missing[:3]) + (", ..." if len(missing) > 3 else "")
        warnings.append(
            f"{ticker}: {len(missing)} sessions of {calendar.name} missing in the download ({shown})"
        )
    o, h, l, c = (bars.column(name) for name in ("open", "high", "low", "close"))  # noqa: E741
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    for i in np.flatnonzero(h < top):
        warnings.append(
            str(Problem(ticker, _label(dates[i]), HIGH_BELOW_BODY, f"high {h[i]:g} raised to {top[i]:g}"))
        )
    for i in np.flatnonzero(l > bottom):
        warnings.append(
            str(Problem(ticker, _label(dates[i]), LOW_ABOVE_BODY, f"low {l[i]:g} lowered to {bottom[i]:g}"))
        )
    if warnings:
        h[:], l[:] = np.maximum(h, top), np.minimum(l, bottom)  # views: repairs `bars` in place
    return Validated(bars, warnings)


def _value_problems(ticker: str, dates: np.ndarray, values: np.ndarray) -> list[Problem]:
    """Missing, infinite and implausible numbers: one problem per cell, naming its column."""
    is_price = np.array([c in PRICE_COLUMNS for c in VALUE_COLUMNS])
    finite = np.isfinite(values)
    number = np.where(finite, values, 0.0)  # rules below judge finite cells only
    checks = [
        (np.isnan(values), MISSING_VALUE, ""),
        (~finite & ~np.isnan(values), NOT_FINITE, ""),
        (finite & is_price & (number <= 0), NON_POSITIVE_PRICE, ""),
        (is_price & (number > MAX_PRICE), PRICE_OUT_OF_RANGE, f", above {MAX_PRICE:g}"),
        (~is_price & (number < 0), NEGATIVE_VOLUME, ""),
        (~is_price & (number > MAX_VOLUME), VOLUME_OUT_OF_RANGE, f", above {MAX_VOLUME:g}"),
    ]
    problems = []
    for mask, rule, limit in checks:
        for i, j in zip(*np.nonzero(mask), strict=True):
            column = VALUE_COLUMNS[j]
            detail = column if rule == MISSING_VALUE else f"{column}={values[i, j]:g}{limit}"
            problems.append(Problem(ticker, _label(dates[i]), rule, detail))
    return problems
