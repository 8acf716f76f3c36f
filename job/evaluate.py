"""Matured predictions -> errors -> rolling metrics and range summaries.

A prediction matures when its target session's actual close is stored. Everything here
reads the `prediction_errors` view, so the numbers users get from plain SQL and the numbers
nightcast reports are computed from the same rows, with the same formulas (job.scores).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import sqlalchemy as sa

from job import scores
from job.compute import MODELS
from job.db import rolling_metrics, upsert
from job.db.schema import prediction_errors as errors_view


@dataclass(frozen=True)
class Matured:
    """Matured forecasts of both models, one row per target session, oldest first.

    `values[i, m]`: predicted close, lower_80, upper_80, lower_95, upper_95 of MODELS[m]
    (NaN where no interval was stored); `actual[i]` the close of `targets[i]`.
    """

    targets: list[date]
    values: np.ndarray
    actual: np.ndarray

    def stats(self, rows: slice, model: str) -> dict[str, Any]:
        """Every `rolling_metrics` column of one model over `rows`; the naive forecast is the
        last known close, which is what direction is measured from."""
        values, actual = self.values[rows], self.actual[rows]
        own, naive = values[:, MODELS.index(model)], values[:, MODELS.index("naive")]
        stats: dict[str, Any] = {
            "n": len(actual),
            "rmse": scores.rmse(own[:, 0], actual),
            "mae": scores.mae(own[:, 0], actual),
            "mape": scores.mape(own[:, 0], actual),
        }
        for name, columns, alpha in (("80", (1, 2), 0.2), ("95", (3, 4), 0.05)):
            known = np.isfinite(own[:, columns]).all(axis=1)
            lower, upper, y = own[known, columns[0]], own[known, columns[1]], actual[known]
            stats[f"coverage_{name}"] = scores.coverage(lower, upper, y) if known.any() else None
            if name == "95":
                stats["width_95"] = float(np.mean(upper - lower)) if known.any() else None
                stats["winkler_95"] = scores.winkler(lower, upper, y, alpha) if known.any() else None
        lstm = model == "lstm"
        stats["dm_pvalue"] = scores.dm_pvalue(own[:, 0] - actual, naive[:, 0] - actual) if lstm else None
        stats["hit_rate"] = scores.hit_rate(own[:, 0], naive[:, 0], actual) if lstm else None
        stats["up_rate"] = float(np.mean(actual > naive[:, 0])) if lstm else None
        return stats


def _matured(rows: Sequence[sa.Row[Any]]) -> Matured:
    """Rows of (target, model, predicted, actual, bounds...) -> one row per target with both models."""
    by_target: dict[date, dict[str, Any]] = {}
    for row in rows:
        by_target.setdefault(_as_date(row[0]), {})[row[1]] = row
    targets = sorted(t for t, models in by_target.items() if len(models) == len(MODELS))
    values = np.array(
        [
            [[np.nan if v is None else v for v in (r[2], *r[4:])] for r in map(by_target[t].get, MODELS)]
            for t in targets
        ],
        dtype=float,
    ).reshape(len(targets), len(MODELS), 5)
    actual = np.array([by_target[t]["naive"][3] for t in targets], dtype=float)
    return Matured(targets, values, actual)


_view = errors_view
_COLUMNS = (_view.c.target_date, _view.c.model, _view.c.predicted_close, _view.c.actual_close,
            _view.c.lower_80, _view.c.upper_80, _view.c.lower_95, _view.c.upper_95)  # fmt: skip
_OF_TICKER = _view.c.ticker == sa.bindparam("ticker")
_LIMIT = sa.bindparam("limit", type_=sa.Integer)
# Built once with parameters: a backfill runs them every session.
_BEFORE = (
    sa.select(*_COLUMNS)
    .where(_OF_TICKER, _view.c.target_date < sa.bindparam("since"))
    .order_by(_view.c.target_date.desc())
    .limit(_LIMIT)
)
_FROM = (
    sa.select(*_COLUMNS)
    .where(_OF_TICKER, _view.c.target_date >= sa.bindparam("since"))
    .order_by(_view.c.target_date)
    .limit(_LIMIT)
)
_ALL = sa.select(*_COLUMNS).where(_OF_TICKER).order_by(_view.c.target_date)
_RANGE = _ALL.where(_view.c.target_date.between(sa.bindparam("start"), sa.bindparam("end")))


def _as_date(value: date | str) -> date:
    """Views lose column types on SQLite, which then hands dates back as ISO strings."""
    return value if isinstance(value, date) else date.fromisoformat(value)


def update_rolling_metrics(
    conn: sa.Connection,
    ticker: str,
    windows: list[int],
    since: date | None,
    until: date | None = None,
    *,
    only: Collection[date] | None = None,
    reach: date | None = None,
) -> int:
    """Write the rolling-metric rows that forecasts maturing on or after `since` touch: up
    to `until` (and of the dates in `only`), when later sessions write the rest; else all
    that forecasts made up to `reach` (default: `since`) touch.

    The row of date d summarizes the last `window` matured forecasts with target <= d, so a
    forecast with target s changes the rows of s and of the next `max(windows) - 1` matured
    targets, and no other. A night (since = tonight's session) writes its own date; the end
    of a backfill that fills sessions before forecasts already stored rewrites the later
    rows its forecasts reach, so they never go stale. `since=None` redoes the whole ticker
    (after a price revision re-based it). Returns the number of rows written.
    """
    widest = max(windows)
    params = {"ticker": ticker}
    if since is None:
        matured = _matured(conn.execute(_ALL, params).all())
    else:
        before = conn.execute(_BEFORE, params | {"since": since, "limit": 2 * (widest - 1)}).all()
        span = max(0, ((until or reach or since) - since).days)  # calendar days >= sessions
        # The forecast made at the last session targets the session after it: one more.
        after = conn.execute(_FROM, params | {"since": since, "limit": 2 * (widest + 1 + span)}).all()
        matured = _matured([*before[::-1], *after])
    rows = [
        {"ticker": ticker, "date": day, "model": model, "window_days": window}
        | matured.stats(slice(max(0, i - window + 1), i + 1), model)
        for i, day in enumerate(matured.targets)
        if (since is None or day >= since)
        and (until is None or day <= until)
        and (only is None or day in only)
        for window in windows
        for model in MODELS
    ]
    return upsert(conn, rolling_metrics, rows)


@dataclass(frozen=True)
class RangeSummary:
    """How the LSTM did against naive over a range of target sessions: `lstm` and `naive`
    hold every rolling-metric column over the whole range."""

    ticker: str
    sessions: int
    lstm: dict[str, Any]
    naive: dict[str, Any]
    calls: int  # sessions where the LSTM forecast a move at all (a guarded model may not)

    @property
    def rmse_ratio(self) -> float:
        return self.lstm["rmse"] / self.naive["rmse"] if self.naive["rmse"] else float("nan")


def summarize(conn: sa.Connection, ticker: str, start: date, end: date) -> RangeSummary | None:
    """Summary over matured forecasts with target sessions in [start, end]; None if none."""
    matured = _matured(conn.execute(_RANGE, {"ticker": ticker, "start": start, "end": end}).all())
    if not matured.targets:
        return None
    every = slice(None)
    calls = int(np.sum(matured.values[:, 0, 0] != matured.values[:, 1, 0]))
    return RangeSummary(
        ticker, len(matured.targets), matured.stats(every, "lstm"), matured.stats(every, "naive"), calls
    )
