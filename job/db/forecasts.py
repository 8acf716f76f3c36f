"""Forecasts in `predictions`: save, what was forecast and when, recent rows, rescaling.

Callers name the columns they want (job.forecast.models defines them); this module only knows
the table. "The newest as-of session with a forecast" has one definition here, for the
cycle's plan and for the scheduler's start-up check alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from job.db.schema import PREDICTED_PRICES, predictions
from job.db.upsert import upsert


def save_forecasts(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> int:
    return upsert(conn, predictions, rows)


_AS_OF = sa.select(predictions.c.as_of_date).distinct().where(predictions.c.ticker == sa.bindparam("ticker"))


def forecast_dates(conn: sa.Connection, ticker: str) -> list[dt.date]:
    """Every as-of session the ticker has forecasts for (both models are stored together)."""
    return list(conn.execute(_AS_OF, {"ticker": ticker}).scalars())


def forecast_tickers(conn: sa.Connection) -> list[str]:
    """Every ticker with a forecast stored, in order."""
    query = sa.select(predictions.c.ticker).distinct().order_by(predictions.c.ticker)
    return list(conn.execute(query).scalars())


def latest_as_of(
    conn: sa.Connection, tickers: Sequence[str], through: dt.date | None = None
) -> dict[str, dt.date]:
    """Per ticker with any, the newest as-of session with a forecast (up to `through`)."""
    query = sa.select(predictions.c.ticker, sa.func.max(predictions.c.as_of_date)).where(
        predictions.c.ticker.in_(tickers)
    )
    if through is not None:
        query = query.where(predictions.c.as_of_date <= through)
    return {ticker: day for ticker, day in conn.execute(query.group_by(predictions.c.ticker))}


def recent_forecasts(
    conn: sa.Connection,
    ticker: str,
    before: dt.date,
    limit: int,
    columns: Sequence[str],
    models: Sequence[str],
) -> list[sa.Row[Any]]:
    """The newest `limit` rows of `models` made before the evening of `before`, newest
    target first: (target_date, model, as_of_date, *columns)."""
    query = (
        sa.select(predictions.c.target_date, predictions.c.model, predictions.c.as_of_date,
                  *(predictions.c[c] for c in columns))
        .where(predictions.c.ticker == ticker, predictions.c.as_of_date < before,
               predictions.c.model.in_(models))
        .order_by(predictions.c.target_date.desc())
        .limit(limit)
    )  # fmt: skip
    return list(conn.execute(query))


def forecasts_between(
    conn: sa.Connection, ticker: str, start: dt.date, end: dt.date, columns: Sequence[str]
) -> list[sa.Row[Any]]:
    """(target_date, model, *columns) of the forecasts targeting start..end, oldest first."""
    query = (
        sa.select(predictions.c.target_date, predictions.c.model, *(predictions.c[c] for c in columns))
        .where(predictions.c.ticker == ticker, predictions.c.target_date.between(start, end))
        .order_by(predictions.c.target_date)
    )
    return list(conn.execute(query))


def rescale_forecasts(conn: sa.Connection, ticker: str, factor: float, own: Mapping[dt.date, float]) -> int:
    """Every price-unit column of the ticker's forecasts times `factor`, but those as of a
    session in `own`, which take that session's own ratio instead. Returns the number of
    forecasts changed."""
    scaled = 0
    if factor != 1.0:
        everything = sa.update(predictions).where(predictions.c.ticker == ticker)
        scaled = conn.execute(everything.values(_times(factor))).rowcount
    by_day = sa.update(predictions).where(
        predictions.c.ticker == ticker, predictions.c.as_of_date == sa.bindparam("day")
    )
    for day, ratio in own.items():  # few: the sessions someone accepted as corrections
        touched = conn.execute(by_day.values(_times(ratio / factor)), {"day": day}).rowcount
        scaled += 0 if factor != 1.0 else touched
    return scaled


def _times(factor: float) -> dict[str, sa.ColumnElement[float]]:
    return {c: predictions.c[c] * factor for c in PREDICTED_PRICES}
