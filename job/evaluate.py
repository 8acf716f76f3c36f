"""Matured predictions -> errors -> rolling metrics and range summaries.

A prediction matures when its target session's actual close is stored. Everything here
reads the `prediction_errors` view, so the numbers users get from plain SQL and the numbers
nightcast reports are computed from the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import sqlalchemy as sa

from job import scores
from job.db import rolling_metrics, upsert
from job.db.schema import prediction_errors as errors_view

MODELS = ("lstm", "naive")


@dataclass(frozen=True)
class ErrorStats:
    """Error statistics of a set of forecasts; mape is in percent."""

    n: int
    rmse: float
    mae: float
    mape: float

    @classmethod
    def of(cls, predicted: np.ndarray, actual: np.ndarray) -> ErrorStats:
        return cls(
            len(actual),
            scores.rmse(predicted, actual),
            scores.mae(predicted, actual),
            scores.mape(predicted, actual),
        )


def _columns(rows: Sequence[sa.Row[Any]]) -> tuple[list[date], np.ndarray, np.ndarray]:
    dates = [_as_date(r[0]) for r in rows]
    return dates, np.array([r[1] for r in rows], float), np.array([r[2] for r in rows], float)


# The statements a backfill runs every session, built once with parameters: constructing
# them per call cost more than running them.
_view = errors_view
_OF_MODEL = sa.and_(_view.c.ticker == sa.bindparam("ticker"), _view.c.model == sa.bindparam("model"))
_MATURED = sa.select(_view.c.target_date, _view.c.predicted_close, _view.c.actual_close).where(_OF_MODEL)
_LIMIT = sa.bindparam("limit", type_=sa.Integer)
_BEFORE = (
    _MATURED.where(_view.c.target_date < sa.bindparam("since"))
    .order_by(_view.c.target_date.desc())
    .limit(_LIMIT)
)
_FROM = (
    _MATURED.where(_view.c.target_date >= sa.bindparam("since")).order_by(_view.c.target_date).limit(_LIMIT)
)
_ALL = _MATURED.order_by(_view.c.target_date)


def _as_date(value: date | str) -> date:
    """Views lose column types on SQLite, which then hands dates back as ISO strings."""
    return value if isinstance(value, date) else date.fromisoformat(value)


def update_rolling_metrics(conn: sa.Connection, ticker: str, windows: list[int], since: date | None) -> int:
    """Write the rolling-metric rows that forecasts maturing on or after `since` touch.

    The row of date d summarizes the last `window` matured forecasts with target <= d, so a
    forecast with target s changes the rows of s and of the next `max(windows) - 1` matured
    targets, and no other. A night (since = tonight's session) writes one date; a backfill
    that fills sessions before forecasts already stored rewrites the later rows its new
    forecasts reach, so they never go stale. `since=None` redoes the whole ticker (after a
    price revision re-based it). Returns the number of rows written.
    """
    widest = max(windows)
    rows = []
    for model in MODELS:
        dates, predicted, actual = _around(conn, ticker, model, since, widest)
        for i, day in enumerate(dates):
            if since is not None and day < since:
                continue  # read only as the start of a window
            for window in windows:
                lo = max(0, i - window + 1)
                stats = ErrorStats.of(predicted[lo : i + 1], actual[lo : i + 1])
                rows.append(
                    {"ticker": ticker, "date": day, "model": model, "window_days": window,
                     "n": stats.n, "rmse": stats.rmse, "mae": stats.mae, "mape": stats.mape}
                )  # fmt: skip
    return upsert(conn, rolling_metrics, rows)


def _around(
    conn: sa.Connection, ticker: str, model: str, since: date | None, widest: int
) -> tuple[list[date], np.ndarray, np.ndarray]:
    """Matured forecasts: the `widest - 1` before `since` and the `widest` from it on (all
    when `since` is None), oldest first; two small queries whatever the history."""
    values = {"ticker": ticker, "model": model}
    if since is None:
        return _columns(conn.execute(_ALL, values).all())
    before = conn.execute(_BEFORE, values | {"since": since, "limit": widest - 1}).all()[::-1]
    after = conn.execute(_FROM, values | {"since": since, "limit": widest}).all()
    return _columns([*before, *after])


@dataclass(frozen=True)
class RangeSummary:
    """How the LSTM did against naive over a range of target sessions."""

    ticker: str
    sessions: int
    lstm: ErrorStats
    naive: ErrorStats
    calls: int  # sessions where the LSTM forecast a move at all (a guarded model may not)
    directional_accuracy: float | None  # share of those calls whose sign was right

    @property
    def rmse_ratio(self) -> float:
        return self.lstm.rmse / self.naive.rmse if self.naive.rmse else float("nan")


def summarize(conn: sa.Connection, ticker: str, start: date, end: date) -> RangeSummary | None:
    """Summary over matured forecasts with target sessions in [start, end]; None if none."""
    query = (
        sa.select(
            errors_view.c.target_date,
            errors_view.c.model,
            errors_view.c.predicted_close,
            errors_view.c.actual_close,
        )
        .where(errors_view.c.ticker == ticker)
        .where(errors_view.c.target_date.between(start, end))
        .order_by(errors_view.c.target_date)
    )
    by_model: dict[str, dict[date, tuple[float, float]]] = {m: {} for m in MODELS}
    for target, model, predicted, actual in conn.execute(query):
        by_model[model][_as_date(target)] = (predicted, actual)
    common = sorted(by_model["lstm"].keys() & by_model["naive"].keys())
    if not common:
        return None
    lstm = np.array([by_model["lstm"][d] for d in common])
    naive = np.array([by_model["naive"][d] for d in common])
    actual, last_close = lstm[:, 1], naive[:, 0]  # the naive forecast is the last known close
    predicted_move, actual_move = np.sign(lstm[:, 0] - last_close), np.sign(actual - last_close)
    calls = predicted_move != 0
    return RangeSummary(
        ticker=ticker,
        sessions=len(common),
        lstm=ErrorStats.of(lstm[:, 0], actual),
        naive=ErrorStats.of(naive[:, 0], actual),
        calls=int(calls.sum()),
        directional_accuracy=(
            float(np.mean(predicted_move[calls] == actual_move[calls])) if calls.any() else None
        ),
    )
