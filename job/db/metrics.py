"""Matured forecasts (the `prediction_errors` view) in, `rolling_metrics` rows out.

Reading the view, not the tables, keeps the numbers nightcast stores and reports the ones
plain SQL over that view gives. Rows come back as (target_date, model, actual_close,
*columns), oldest target first, with dates as dates on every database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import sqlalchemy as sa

from job.db.schema import prediction_errors as errors
from job.db.schema import rolling_metrics
from job.db.upsert import upsert

Matured = list[tuple[Any, ...]]


@dataclass(frozen=True)
class _Queries:
    every: sa.Select[Any]
    between: sa.Select[Any]
    before: sa.Select[Any]
    after: sa.Select[Any]


@cache
def _queries(columns: tuple[str, ...]) -> _Queries:
    """Built once per column set, with parameters: a backfill runs them every session."""
    select = sa.select(
        errors.c.target_date, errors.c.model, errors.c.actual_close, *(errors.c[c] for c in columns)
    )
    of_ticker = select.where(errors.c.ticker == sa.bindparam("ticker"))
    limit = sa.bindparam("limit", type_=sa.Integer)
    return _Queries(
        every=of_ticker.order_by(errors.c.target_date),
        between=of_ticker.where(errors.c.target_date.between(sa.bindparam("start"), sa.bindparam("end")))
        .order_by(errors.c.target_date),
        before=of_ticker.where(errors.c.target_date < sa.bindparam("since"))
        .order_by(errors.c.target_date.desc()).limit(limit),
        after=of_ticker.where(errors.c.target_date >= sa.bindparam("since"))
        .order_by(errors.c.target_date).limit(limit),
    )  # fmt: skip


def matured(conn: sa.Connection, ticker: str, columns: Sequence[str]) -> Matured:
    """Every matured forecast of the ticker."""
    return _dated(conn.execute(_queries(tuple(columns)).every, {"ticker": ticker}))


def matured_between(
    conn: sa.Connection, ticker: str, start: dt.date, end: dt.date, columns: Sequence[str]
) -> Matured:
    params = {"ticker": ticker, "start": start, "end": end}
    return _dated(conn.execute(_queries(tuple(columns)).between, params))


def matured_around(
    conn: sa.Connection, ticker: str, since: dt.date, before: int, after: int, columns: Sequence[str]
) -> Matured:
    """The last `before` rows with a target before `since` and the first `after` from it."""
    queries, params = _queries(tuple(columns)), {"ticker": ticker, "since": since}
    earlier = conn.execute(queries.before, params | {"limit": before}).all()
    return _dated([*earlier[::-1], *conn.execute(queries.after, params | {"limit": after})])


def _dated(rows: Any) -> Matured:
    """Views lose column types on SQLite, which then hands dates back as ISO strings."""
    return [(_date(row[0]), *row[1:]) for row in rows]


def _date(value: dt.date | str) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def save_metrics(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> int:
    return upsert(conn, rolling_metrics, rows)


def full_windows(conn: sa.Connection, ticker: str, start: dt.date, end: dt.date) -> list[sa.Row[Any]]:
    """(date, model, window_days, rmse, coverage_80, coverage_95) of the full windows ending
    in start..end, by window, model and date: what the report's rolling charts draw."""
    m = rolling_metrics.c
    query = (
        sa.select(m.date, m.model, m.window_days, m.rmse, m.coverage_80, m.coverage_95)
        .where(m.ticker == ticker, m.date.between(start, end), m.n == m.window_days)
        .order_by(m.window_days, m.model, m.date)
    )
    return list(conn.execute(query))
