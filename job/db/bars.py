"""The one reader of a ticker's stored bars, as arrays (job.sources.base.Bars).

Ingest compares with them, the compute stage learns from their closes, the report draws
them: all through here, so every reader sees the same rows in the same order and types.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import sqlalchemy as sa

from job.db.schema import prices
from job.sources.base import VALUE_COLUMNS, Bars

_BARS = (
    sa.select(prices.c.date, *(prices.c[c] for c in VALUE_COLUMNS))
    .where(
        prices.c.ticker == sa.bindparam("ticker"),
        prices.c.date >= sa.bindparam("first"),
        prices.c.date <= sa.bindparam("last"),
    )
    .order_by(prices.c.date)
)
_BARS_BY_DATE = sa.select(prices.c.date, *(prices.c[c] for c in VALUE_COLUMNS)).where(
    prices.c.ticker == sa.bindparam("ticker")
)


def read_bars(
    conn: sa.Connection, ticker: str, first: dt.date = dt.date.min, last: dt.date = dt.date.max
) -> Bars:
    """The ticker's stored bars with first <= date <= last, oldest first."""
    return _as_bars(conn.execute(_BARS, {"ticker": ticker, "first": first, "last": last}).all())


def read_bars_around(conn: sa.Connection, ticker: str, first: dt.date, last: dt.date) -> Bars:
    """The stored bar just before `first` and the one just after `last` (those that exist):
    what a batch of new bars joins on to."""
    before = _BARS_BY_DATE.where(prices.c.date < first).order_by(prices.c.date.desc()).limit(1)
    after = _BARS_BY_DATE.where(prices.c.date > last).order_by(prices.c.date).limit(1)
    return _as_bars([row for query in (before, after) for row in conn.execute(query, {"ticker": ticker})])


def _as_bars(rows: list[sa.Row]) -> Bars:
    dates = np.array([row[0] for row in rows], dtype=object)
    values = np.array([row[1:] for row in rows], dtype=np.float64).reshape(len(rows), len(VALUE_COLUMNS))
    return Bars(dates, values)
