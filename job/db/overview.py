"""What `nightcast status` reads: per ticker, its stored prices, newest forecasts, the
model behind them and its skill (the `latest_predictions` and `model_skill` views, so it
shows exactly what a SQL user would get from them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa

from job.db.schema import latest_predictions, model_skill, model_versions, prices


@dataclass
class TickerStatus:
    rows: int
    last_session: date
    forecasts: dict[str, sa.Row[Any]] = field(default_factory=dict)
    model: sa.Row[Any] | None = None
    sessions_since_training: int = 0
    skill: list[sa.Row[Any]] = field(default_factory=list)


def ticker_status(conn: sa.Connection, versioned: Sequence[str]) -> dict[str, TickerStatus]:
    """A handful of set-based queries, whatever the number of tickers; `versioned`: the
    models whose forecasts point at a model version (job.forecast.entries)."""
    tickers = {
        t: TickerStatus(n, last)
        for t, n, last in conn.execute(
            sa.select(prices.c.ticker, sa.func.count(), sa.func.max(prices.c.date))
            .group_by(prices.c.ticker)
            .order_by(prices.c.ticker)
        )
    }
    for row in conn.execute(sa.select(latest_predictions)):
        if row.ticker in tickers:
            tickers[row.ticker].forecasts[row.model] = row
    # The model behind the newest forecast, not the newest row: a backfill of older
    # sessions adds versions after it that no current forecast comes from.
    behind_forecast = sa.select(latest_predictions.c.model_version_id).where(
        latest_predictions.c.model.in_(versioned)
    )
    columns = [model_versions.c[c] for c in ("id", "ticker", "kind", "trained_through", "created_at")]
    for row in conn.execute(sa.select(*columns).where(model_versions.c.id.in_(behind_forecast))):
        if row.ticker in tickers:
            tickers[row.ticker].model = row
    behind = (
        sa.select(model_versions.c.ticker, sa.func.count())
        .join(
            prices,
            sa.and_(
                prices.c.ticker == model_versions.c.ticker,
                prices.c.date > model_versions.c.trained_through,
            ),
        )
        .where(model_versions.c.id.in_(behind_forecast))
        .group_by(model_versions.c.ticker)
    )
    for ticker, count in conn.execute(behind):
        if ticker in tickers:
            tickers[ticker].sessions_since_training = count
    for row in conn.execute(sa.select(model_skill).order_by(model_skill.c.window_days, model_skill.c.model)):
        if row.ticker in tickers:
            tickers[row.ticker].skill.append(row)
    return tickers
