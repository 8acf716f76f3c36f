"""What the report draws, read from the tables: the exact frames each chart plots, so
tests can check the plotted series and values rather than only that a PNG exists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import sqlalchemy as sa

from job.db.bars import read_bars
from job.db.forecasts import forecasts_between
from job.db.metrics import full_windows
from job.errors import NightcastError
from job.forecast.entries import model_names
from job.forecast.models import LEVELS, PRIMARY, bounds

#: The interval columns drawn around the LSTM's forecast.
BOUNDS = tuple(name for level in LEVELS for name in bounds(level))


@dataclass(frozen=True)
class ChartData:
    """Everything the four charts of one ticker plot.

    forecasts: indexed by target session; `actual` (NaN until the session closed), `lstm`,
        `naive`: each forecast sits at the session it forecast, not the day it was made;
        `lower_80`..`upper_95`: the LSTM forecast's intervals (NaN where none was stored).
    rolling: indexed by date; one column per (model, window_days) holding the rolling RMSE,
        full windows only (n == window_days), so early points never look better than they are.
    coverage: indexed by date; (model, level) columns holding the rolling coverage of the
        widest full window.
    errors: predicted - actual per model, over the sessions where both models matured
        (the same sessions `summarize` uses).
    """

    ticker: str
    start: date
    end: date
    forecasts: pd.DataFrame
    rolling: pd.DataFrame
    coverage: pd.DataFrame
    errors: dict[str, np.ndarray]

    @property
    def models(self) -> tuple[str, ...]:
        """The models drawn (job.forecast.entries), in their order."""
        return tuple(self.errors)


def load_chart_data(conn: sa.Connection, ticker: str, start: date, end: date) -> ChartData:
    """The plotted frames for target sessions in [start, end]; an error if none were forecast."""
    forecast_rows = forecasts_between(conn, ticker, start, end, ("predicted_close", *BOUNDS))
    if not forecast_rows:
        where = "" if (start, end) == (date.min, date.max) else f" with a target session in {start}..{end}"
        raise NightcastError(f"{ticker}: no predictions stored{where}")
    models = model_names()
    rows = pd.DataFrame(forecast_rows, columns=["target_date", "model", "predicted_close", *BOUNDS])
    forecasts = rows.pivot(index="target_date", columns="model", values="predicted_close").reindex(
        columns=models
    )
    forecasts = forecasts.join(rows[rows["model"] == PRIMARY].set_index("target_date")[list(BOUNDS)])
    first, last = forecasts.index.min(), forecasts.index.max()
    dates, columns = read_bars(conn, ticker, first, last)
    closes = dict(zip(dates, columns["close"], strict=True))
    forecasts.insert(0, "actual", [closes.get(d, np.nan) for d in forecasts.index])
    forecasts.index.name = "target_date"
    forecasts.columns.name = None
    forecasts = forecasts.astype(float)

    metric_rows = full_windows(conn, ticker, start, end)
    metrics = pd.DataFrame(
        metric_rows, columns=["date", "model", "window_days", "rmse", "coverage_80", "coverage_95"]
    )
    rolling = metrics.pivot(index="date", columns=["model", "window_days"], values="rmse").sort_index()
    rolling = rolling[[c for c in rolling.columns if c[0] in models]]
    rolling = rolling.reindex(columns=sorted(rolling.columns, key=lambda c: (c[1], models.index(c[0]))))
    widest = metrics[metrics["window_days"] == metrics["window_days"].max()]
    coverage = widest.pivot(index="date", columns="model", values=["coverage_80", "coverage_95"]).sort_index()
    coverage = coverage.astype(float).dropna(how="all")

    matured = forecasts.dropna(subset=["actual", *models])
    errors = {model: (matured[model] - matured["actual"]).to_numpy() for model in models}
    return ChartData(ticker, start, end, forecasts, rolling, coverage, errors)
