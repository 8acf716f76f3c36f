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
        error = predicted - actual
        return cls(
            n=len(error),
            rmse=float(np.sqrt(np.mean(error**2))),  # a true root of the mean squared error
            mae=float(np.mean(np.abs(error))),
            mape=float(100.0 * np.mean(np.abs(error) / actual)),
        )


def _matured(
    conn: sa.Connection, ticker: str, model: str, through: date, limit: int
) -> tuple[list[date], np.ndarray, np.ndarray]:
    """The newest `limit` matured forecasts of one model up to `through`, oldest first."""
    rows = conn.execute(_NEWEST, {"ticker": ticker, "model": model, "through": through, "limit": limit}).all()
    return _columns(rows[::-1])


def _columns(rows: Sequence[sa.Row[Any]]) -> tuple[list[date], np.ndarray, np.ndarray]:
    dates = [_as_date(r[0]) for r in rows]
    return dates, np.array([r[1] for r in rows], float), np.array([r[2] for r in rows], float)


# The statements a backfill runs every session, built once with parameters: constructing
# them per call cost more than running them.
_view = errors_view
_OF_MODEL = sa.and_(_view.c.ticker == sa.bindparam("ticker"), _view.c.model == sa.bindparam("model"))
_UPTO = sa.select(_view.c.target_date, _view.c.predicted_close, _view.c.actual_close).where(
    _OF_MODEL, _view.c.target_date <= sa.bindparam("through")
)
_NEWEST = _UPTO.order_by(_view.c.target_date.desc()).limit(sa.bindparam("limit", type_=sa.Integer))
_FIRST_NEEDED = (  # the `widest`-th newest matured target on or before `last`
    sa.select(_view.c.target_date)
    .where(_OF_MODEL, _view.c.target_date <= sa.bindparam("last"))
    .order_by(_view.c.target_date.desc())
    .offset(sa.bindparam("skip", type_=sa.Integer))
    .limit(1)
    .scalar_subquery()
)
_ALL = _UPTO.order_by(_view.c.target_date)
_SINCE = _ALL.where(sa.or_(_FIRST_NEEDED.is_(None), _view.c.target_date >= _FIRST_NEEDED))
_LAST_EVALUATED = sa.select(sa.func.max(rolling_metrics.c.date)).where(
    rolling_metrics.c.ticker == sa.bindparam("ticker")
)


def _as_date(value: date | str) -> date:
    """Views lose column types on SQLite, which then hands dates back as ISO strings."""
    return value if isinstance(value, date) else date.fromisoformat(value)


def update_rolling_metrics(
    conn: sa.Connection, ticker: str, through: date, windows: list[int], *, recompute: bool = False
) -> int:
    """Write rolling metrics for every session that matured since the last evaluation.

    Only the newest rows plus the largest window are read, so the nightly cost does not grow
    with history. `recompute` redoes the whole ticker (after a price revision re-based it).
    Returns the number of rows written.
    """
    last = None
    if not recompute:
        last = conn.execute(_LAST_EVALUATED, {"ticker": ticker}).scalar()
    widest = max(windows)
    rows = []
    for model in MODELS:
        dates, predicted, actual = _matured_since(conn, ticker, model, through, last, widest)
        for i, day in enumerate(dates):
            if last is not None and day <= last:
                continue  # read only as the start of a window
            for window in windows:
                lo = max(0, i - window + 1)
                stats = ErrorStats.of(predicted[lo : i + 1], actual[lo : i + 1])
                rows.append(
                    {
                        "ticker": ticker,
                        "date": day,
                        "model": model,
                        "window_days": window,
                        "n": stats.n,
                        "rmse": stats.rmse,
                        "mae": stats.mae,
                        "mape": stats.mape,
                    }
                )
    return upsert(conn, rolling_metrics, rows)


def _matured_since(
    conn: sa.Connection, ticker: str, model: str, through: date, last: date | None, widest: int
) -> tuple[list[date], np.ndarray, np.ndarray]:
    """Matured forecasts after `last` up to `through`, preceded by the `widest` before them.

    One query: the first row needed is found by a subquery (the widest-th newest matured
    target on or before `last`), so a night reads a few dozen rows whatever the history.
    """
    values = {"ticker": ticker, "model": model, "through": through}
    if last is None:
        return _columns(conn.execute(_ALL, values).all())
    return _columns(conn.execute(_SINCE, values | {"last": last, "skip": widest - 1}).all())


def skill(conn: sa.Connection, ticker: str, through: date, window: int) -> float | None:
    """RMSE_lstm / RMSE_naive over the last `window` sessions both models forecast.

    None until a full window has matured: a ratio over two or three sessions is noise.
    """
    lstm_dates, lstm_pred, actual = _matured(conn, ticker, "lstm", through, limit=window)
    naive_dates, naive_pred, _ = _matured(conn, ticker, "naive", through, limit=window)
    if len(lstm_dates) < window or lstm_dates != naive_dates:
        return None
    naive_rmse = ErrorStats.of(naive_pred, actual).rmse
    if naive_rmse == 0:
        return None
    return ErrorStats.of(lstm_pred, actual).rmse / naive_rmse


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
