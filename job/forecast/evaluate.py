"""Matured predictions -> errors -> rolling metrics and range summaries.

A prediction matures when its target session's actual close is stored. Everything here
reads the `prediction_errors` view (job.db.metrics), so the numbers users get from plain
SQL and the numbers nightcast reports are computed from the same rows, with the same
formulas (job.forecast.scores).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import sqlalchemy as sa

from job.db import metrics
from job.forecast import scores
from job.forecast.entries import model_names
from job.forecast.models import LEVELS, PRIMARY, REFERENCE, bounds

#: The forecast columns the metrics read.
READ = ("predicted_close", *(name for level in LEVELS for name in bounds(level)), "scale", "network_scale")


@dataclass(frozen=True)
class Matured:
    """Matured forecasts of every model, one per target session, oldest first:
    `values[model][column][i]` (NaN where no interval was stored), `actual[i]` the close of
    `targets[i]`."""

    targets: list[date]
    values: dict[str, dict[str, np.ndarray]]
    actual: np.ndarray

    def stats(self, rows: slice, model: str) -> dict[str, Any] | None:
        """Every `rolling_metrics` column of one model over those of `rows` it forecast (None:
        none, e.g. sessions before a model joined the list); the naive forecast is the last
        known close, which is what direction is measured from."""
        made = np.isfinite(self.values[model]["predicted_close"][rows])
        if not made.any():
            return None
        own = {name: v[rows][made] for name, v in self.values[model].items()}
        actual, last = self.actual[rows][made], self.values[REFERENCE]["predicted_close"][rows][made]
        point = own["predicted_close"]
        stats: dict[str, Any] = {
            "n": len(actual),
            "rmse": scores.rmse(point, actual),
            "mae": scores.mae(point, actual),
            "mape": scores.mape(point, actual),
        }
        for level in LEVELS:
            lower, upper = (own[name] for name in bounds(level))
            known = np.isfinite(lower) & np.isfinite(upper)
            lower, upper, y = lower[known], upper[known], actual[known]
            stats[f"coverage_{level}"] = scores.coverage(lower, upper, y) if known.any() else None
            if level == 95:
                stats["width_95"] = float(np.mean(upper - lower)) if known.any() else None
                stats["winkler_95"] = scores.winkler(lower, upper, y, 0.05) if known.any() else None
        against = model != REFERENCE  # the reference has no test against itself
        stats["dm_pvalue"] = scores.dm_pvalue(point - actual, last - actual) if against else None
        stats["hit_rate"] = scores.hit_rate(point, last, actual) if against else None
        stats["up_rate"] = float(np.mean(actual > last)) if against else None
        return stats


def _matured(rows: Sequence[tuple[Any, ...]]) -> Matured:
    """Rows of (target, model, actual, *READ) -> one entry per target naive forecast, each
    listed model's columns NaN where it made no forecast (a model added to the list later)."""
    models = model_names()
    by_target: dict[date, dict[str, tuple[Any, ...]]] = {}
    for row in rows:
        if row[1] in models:
            by_target.setdefault(row[0], {})[row[1]] = row
    targets = sorted(t for t, made in by_target.items() if REFERENCE in made)
    values = {
        model: {
            name: np.array([_value(by_target[t].get(model), 3 + i) for t in targets], float)
            for i, name in enumerate(READ)
        }
        for model in models
    }
    actual = np.array([by_target[t][REFERENCE][2] for t in targets], dtype=float)
    return Matured(targets, values, actual)


def _value(row: tuple[Any, ...] | None, index: int) -> float:
    return np.nan if row is None or row[index] is None else row[index]


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
    if since is None:
        matured = _matured(metrics.matured(conn, ticker, READ))
    else:
        span = max(0, ((until or reach or since) - since).days)  # calendar days >= sessions
        # The forecast made at the last session targets the session after it: one more.
        matured = _matured(
            metrics.matured_around(conn, ticker, since, 2 * (widest - 1), 2 * (widest + 1 + span), READ)
        )
    rows = [
        {"ticker": ticker, "date": day, "model": model, "window_days": window} | stats
        for i, day in enumerate(matured.targets)
        if (since is None or day >= since)
        and (until is None or day <= until)
        and (only is None or day in only)
        for window in windows
        for model in matured.values
        if (stats := matured.stats(slice(max(0, i - window + 1), i + 1), model)) is not None
    ]
    return metrics.save_metrics(conn, rows)


@dataclass(frozen=True)
class RangeSummary:
    """How every model did over a range of target sessions: `models[name]` holds every
    rolling-metric column over the whole range."""

    ticker: str
    sessions: int
    models: dict[str, dict[str, Any]]
    points: dict[str, np.ndarray]  # each model's forecasts, one per session
    network_scaled: int = 0  # sessions whose intervals the network's own scale set

    @property
    def calls(self) -> int:
        """Sessions where the LSTM forecast a move at all (a guarded model may not)."""
        return self.moves(PRIMARY)

    @property
    def lstm(self) -> dict[str, Any]:
        return self.models[PRIMARY]

    @property
    def naive(self) -> dict[str, Any]:
        return self.models[REFERENCE]

    def moves(self, model: str) -> int:
        """Sessions where `model` forecast a move off the last close (the reference's: none)."""
        own = self.points[model]
        return int(np.sum(np.isfinite(own) & (own != self.points[REFERENCE])))

    def ratio(self, model: str) -> float:
        """The model's RMSE ratio to the reference's over the range."""
        return scores.rmse_ratio(self.models[model]["rmse"], self.naive["rmse"])

    @property
    def rmse_ratio(self) -> float:
        return self.ratio(PRIMARY)


def summarize(conn: sa.Connection, ticker: str, start: date, end: date) -> RangeSummary | None:
    """Summary over matured forecasts with target sessions in [start, end]; None if none."""
    matured = _matured(metrics.matured_between(conn, ticker, start, end, READ))
    if not matured.targets:
        return None
    every = slice(None)
    point = {model: values["predicted_close"] for model, values in matured.values.items()}
    scale = matured.values[REFERENCE]
    network_scaled = int(np.sum(scale["scale"] == scale["network_scale"]))  # NaN equals nothing
    made = {model: matured.stats(every, model) for model in matured.values}
    stats = {model: figures for model, figures in made.items() if figures is not None}
    return RangeSummary(ticker, len(matured.targets), stats, point, network_scaled)
