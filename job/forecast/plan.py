"""The read side of a cycle: for one ticker, what the compute stage needs, read into arrays.

`plan` answers, from the tables alone: which as-of sessions still lack forecasts, which
model they start from (the newest trained on data up to the first of them), whether prices
were re-based under it, the forecasts made before the first of them, and the stored closes
reaching back as far as all of that needs. Everything it reads predates the first session
to replay, so a replay never sees a forecast or a model from its own future.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from job.config import Settings
from job.db.bars import read_bars
from job.db.flags import revisions_since
from job.db.forecasts import forecast_dates, recent_forecasts
from job.errors import TickerError
from job.forecast import intervals
from job.forecast.compute import State, Task, lookback
from job.forecast.entries import model_names
from job.forecast.model import ArtifactError, windows
from job.forecast.model.features import OHLCV
from job.forecast.model.stored import load_latest
from job.forecast.models import COLUMNS, NUMERIC, REFERENCE
from job.forecast.session import Recent
from job.support.calendar import Sessions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """A ticker's task and the stored model it starts from (the parent of its first version)."""

    task: Task
    parent_id: int | None


def read_prices(conn: sa.Connection, ticker: str, through: dt.date) -> tuple[np.ndarray, OHLCV]:
    """The ticker's stored sessions up to `through`, as (datetime64[D] dates, bars)."""
    dates, columns = read_bars(conn, ticker, last=through)
    bars = OHLCV(*(columns[name] for name in ("close", "open", "high", "low", "volume")))
    return dates.astype("datetime64[D]"), bars


def plan(
    conn: sa.Connection,
    ticker: str,
    settings: Settings,
    calendar: Sessions,
    *,
    horizon: dt.date,
    start: dt.date | None = None,
    retrain: bool = False,
) -> Plan | None:
    """The ticker's task up to `horizon`, or None when every session already has forecasts.

    Nightly (`start` None): every stored session after the last forecast, or only the
    horizon for a ticker never forecast. Backfill: every session from the one before
    `start` (whose forecast targets `start`). `retrain`: one from-scratch training as of the
    horizon's last stored session, whatever is stored (`nightcast train`).
    """
    dates, bars = read_prices(conn, ticker, horizon)
    if not len(dates):
        raise TickerError(ticker, f"no stored prices on or before {horizon}")
    todo = dates[-1:] if retrain else _pending(conn, ticker, dates, horizon, start, calendar)
    if not len(todo):
        return None
    first = todo[0].astype(dt.date)
    state, parent_id = _state(conn, ticker, first, settings)
    # The compute stage reads fixed spans back from each session (job.forecast.compute.lookback):
    # with at least those, its results do not depend on where the arrays start.
    keep = [int(np.searchsorted(dates, todo[0])) - lookback(settings.model)]
    if state.last_retrain is not None:
        keep.append(int(np.searchsorted(dates, state.last_retrain)))
    if len(state.recent.as_of):  # ...and the baseline scale of the day each was made
        keep.append(int(np.searchsorted(dates, state.recent.as_of[0])) - intervals.SCALE_SESSIONS - 1)
    levels = windows.representation(settings.model.preset).levels
    lo = 0 if levels else max(0, min(keep))  # the tutorial's levels train on all they get
    targets = np.array([calendar.next_session(d.astype(dt.date)) for d in todo], "datetime64[D]")
    task = Task(
        ticker, dates[lo:], bars.close[lo:], todo, targets, state, settings.model, settings.policy, retrain,
        bars[lo:],
    )  # fmt: skip
    return Plan(task, parent_id)


def _pending(
    conn: sa.Connection,
    ticker: str,
    dates: np.ndarray,
    horizon: dt.date,
    start: dt.date | None,
    calendar: Sessions,
) -> np.ndarray:
    """As-of sessions still without forecasts, oldest first; for a backfill, an error when
    even the last stored session's forecast targets a session before `start`."""
    done = np.array(forecast_dates(conn, ticker), "datetime64[D]")
    missing = dates[~np.isin(dates, done)]
    if start is not None:
        before = dates[dates < np.datetime64(start)]
        if not len(before):
            raise TickerError(ticker, f"no stored session before --start {start} to train on")
        last = before[-1].astype(dt.date)
        if calendar.next_session(last) < start:
            raise TickerError(
                ticker, f"--start {start} is after the last stored session {last} and the one after it: "
                "nothing to replay (store the prices up to --start first)",
            )  # fmt: skip
        return missing[missing >= before[-1]]
    earlier = done[done <= np.datetime64(horizon)]
    if len(earlier) and earlier.max() < np.datetime64(horizon):
        return missing[missing > earlier.max()]  # the nights missed since the last forecast
    return missing[missing == dates[-1]]  # tonight only (a new ticker starts here)


def _state(conn: sa.Connection, ticker: str, first: dt.date, settings: Settings) -> tuple[State, int | None]:
    """The model and recent forecasts as they were before the evening of `first`."""
    recent = _recent(conn, ticker, first)
    try:
        loaded = load_latest(conn, ticker, through=first)
    except ArtifactError as exc:
        log.warning("%s; retraining from scratch", exc)
        return State(recent=recent), exc.version_id
    if loaded is None:
        return State(recent=recent), None
    # A re-basing leaves a model of returns as it was; a correction, or levels, it does not.
    revised = any(
        kind == "correction" or (factor != 1.0 and not loaded.forecaster.scale_free)
        for kind, factor in revisions_since(conn, ticker, loaded.created_at)
    )
    last_retrain = np.datetime64(loaded.last_retrain_through, "D")
    return State(loaded.forecaster, last_retrain, revised, recent), loaded.version_id


def _recent(conn: sa.Connection, ticker: str, before: dt.date) -> Recent:
    """The last forecasts (every model, with its intervals) made before the evening of `before`."""
    models = model_names()
    rows = recent_forecasts(conn, ticker, before, len(models) * intervals.WINDOW, COLUMNS, models)
    by_target: dict[dt.date, dict[str, sa.Row]] = {}
    for row in rows:
        by_target.setdefault(row.target_date, {})[row.model] = row
    # Every target naive forecast; a model added to the list later has NaN before its first.
    kept = sorted(t for t, made in by_target.items() if REFERENCE in made)[-intervals.WINDOW :]
    return Recent(
        np.array(kept, "datetime64[D]"),
        np.array([by_target[t][REFERENCE].as_of_date for t in kept], "datetime64[D]"),  # every model's
        {
            model: {
                name: np.array([_number(by_target[t].get(model), name) for t in kept], float)
                for name in NUMERIC
            }
            for model in models
        },
    )


def _number(row: sa.Row | None, name: str) -> float:
    value = None if row is None else getattr(row, name)
    return np.nan if value is None else value
