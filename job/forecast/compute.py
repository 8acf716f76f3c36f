"""The compute stage: one ticker's sessions replayed on plain arrays.

Per as-of session: retrain or fine-tune (job.forecast.policy), fit, forecast the next close
with the LSTM and the naive model, put prediction intervals around both (job.forecast.intervals),
and yield that with the state after it. Arrays, dates and frozen dataclasses go in and
out, never a database or Keras object: the same call runs in-process or on Dask workers,
and a replay cut into chunks (each from the state the previous one ended with) equals one
pass. Each session sees the bars up to and including its own only.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from job.errors import TickerError
from job.forecast import intervals
from job.forecast.entries import MODELS, Model, forecast_all
from job.forecast.model import windows
from job.forecast.model.core import Fit, Forecaster, train, update
from job.forecast.model.features import OHLCV
from job.forecast.models import PRIMARY, REFERENCE, Forecast
from job.forecast.params import ModelParams, RetrainPolicy
from job.forecast.policy import Decision, decide
from job.forecast.session import Recent, Session, Track

#: A one-session forecast further than this factor from the last close is not stored.
PLAUSIBLE_FACTOR = 10.0


@dataclass(frozen=True)
class State:
    """What a ticker carries from one session to the next (and, stored, from night to night)."""

    forecaster: Forecaster | None = None  # None: the next session retrains
    last_retrain: np.datetime64 | None = None  # as-of session of the last from-scratch training
    revised: bool = False  # prices were re-based under the forecaster: retrain
    recent: Recent = field(default_factory=Recent)


@dataclass(frozen=True)
class Task:
    """One ticker's work, as arrays: the stored sessions (`dates`, `closes`, and the whole
    `bars` when known) from far enough back for a retrain and for the state's recent
    forecasts, the as-of `sessions` to replay (each in `dates`) and the exchange session
    after each (`targets`)."""

    ticker: str
    dates: np.ndarray  # datetime64[D], ascending
    closes: np.ndarray  # float64
    sessions: np.ndarray  # datetime64[D]
    targets: np.ndarray  # datetime64[D]
    state: State
    params: ModelParams
    policy: RetrainPolicy
    retrain: bool = False  # retrain at the first session whatever the policy says
    bars: OHLCV | None = None  # None: closes alone (open, high, low and volume unknown)
    models: tuple[Model, ...] = field(default_factory=lambda: tuple(MODELS))  # job.forecast.entries

    @property
    def prices(self) -> OHLCV:
        return OHLCV(self.closes) if self.bars is None else self.bars

    def chunk(self, start: int, stop: int) -> Task:
        """The same work for sessions[start:stop], to start from the state sessions[start - 1] left."""
        return replace(self, sessions=self.sessions[start:stop], targets=self.targets[start:stop])


@dataclass(frozen=True)
class Step:
    """What one as-of session produced: a model version and every model's forecast of the next close."""

    as_of: dt.date
    target: dt.date
    kind: Literal["retrain", "update"]
    reason: str
    fit: Fit
    trained_from: dt.date
    forecasts: Mapping[str, Forecast]  # per model, in the task's order
    warning: str | None = None

    @property
    def lstm(self) -> float:
        return self.forecasts[PRIMARY].predicted_close

    @property
    def naive(self) -> float:
        return self.forecasts[REFERENCE].predicted_close


def lookback(params: ModelParams) -> int:
    """Sessions before an as-of session that its results may read: a retrain's window, an
    update's, and the naive scores with the baseline scale of each. No result depends on
    anything older."""
    context = windows.min_closes(0, params.preset)
    spans = (
        params.train_sessions,
        params.update_sessions + context,
        intervals.WINDOW + intervals.SCALE_SESSIONS,
    )
    return max(spans) + 1


def replay(task: Task, state: State | None = None) -> Iterator[tuple[Step, State]]:
    """Each session of `task` in order, from `state` (default `task.state`)."""
    state = task.state if state is None else state
    prices = task.prices
    baseline = np.full(len(prices), np.nan)  # sigma_j reads bars up to j only
    if len(task.sessions):
        first = int(np.searchsorted(task.dates, task.sessions[0])) - intervals.WINDOW - 1
        last = int(np.searchsorted(task.dates, task.sessions[-1], side="right"))
        made = np.searchsorted(task.dates, state.recent.as_of)  # earlier forecasts' sessions
        needed = np.union1d(np.arange(max(0, first), last), made[made < last])
        baseline[needed] = intervals.baseline_scale(prices, needed)
    for i, (as_of, target) in enumerate(zip(task.sessions, task.targets, strict=True)):
        step, state = _session(task, prices, state, baseline, as_of, target, force=task.retrain and i == 0)
        yield step, state


def replay_all(task: Task, state: State | None = None) -> tuple[list[Step], State]:
    """`replay` run to the end: the unit of work a Dask worker runs and returns, each
    model's artifact packed (`Forecaster.artifact`), which the caller would do otherwise
    beside the workers."""
    done = list(replay(task, state))
    for step, _ in done:
        step.fit.forecaster.artifact  # noqa: B018  (computed and cached for the caller)
    final = done[-1][1] if done else (task.state if state is None else state)
    return [step for step, _ in done], final


def _session(
    task: Task,
    prices: OHLCV,
    state: State,
    baseline: np.ndarray,
    as_of: np.datetime64,
    target: np.datetime64,
    *,
    force: bool,
) -> tuple[Step, State]:
    params, day = task.params, as_of.astype(dt.date)
    end = int(np.searchsorted(task.dates, as_of, side="right"))
    if end == 0 or task.dates[end - 1] != as_of:
        raise TickerError(task.ticker, f"as of {day}: no stored close for that session")
    bars, track = prices[:end], Track(state.recent, task.dates[:end], task.closes[:end])
    forecaster = state.forecaster if state.forecaster is not None and state.forecaster.suits(params) else None
    since = (
        0 if state.last_retrain is None else end - 1 - int(np.searchsorted(task.dates, state.last_retrain))
    )
    decision = Decision("retrain", "retrain asked for") if force else decide(
        has_model=forecaster is not None, sessions_since_retrain=since, revised_since_model=state.revised,
        skill=track.skill(task.policy.skill_window), policy=task.policy,
    )  # fmt: skip
    kind, reason, warning = decision.kind, decision.reason, None
    fit = _fit(task.ticker, day, bars, None if kind == "retrain" else forecaster, params)
    naive, (network, network_scale) = float(bars.close[-1]), fit.forecaster.outlook(bars)
    if not _plausible(network, naive) and kind == "update":
        kind, reason = "retrain", f"the update forecast {network:g}, not a plausible close"
        fit = _fit(task.ticker, day, bars, None, params)
        network, network_scale = fit.forecaster.outlook(bars)
    plausible = _plausible(network, naive)
    if not plausible:
        warning = f"{task.ticker} as of {day}: the model forecast {network:g}; the naive forecast stands in"
        network, network_scale = naive, math.nan
    if not (np.isfinite(network_scale) and network_scale > 0):
        network_scale = math.nan
    source = track.scale_source(baseline) if np.isfinite(network_scale) else "baseline"
    sigma = track.scales(baseline, source)
    used = network_scale if source == "network" else float(baseline[end - 1])
    scale = {"scale": used, "network_scale": network_scale, "scale_source": source}
    session = Session(bars, track, sigma, scale, fit, network, plausible, params.guard)
    forecasts = forecast_all(session, task.models)
    retrained = as_of if kind == "retrain" else state.last_retrain
    after = State(fit.forecaster, retrained, False, state.recent.add(target, as_of, forecasts))
    trained_from = task.dates[end - fit.n_closes].astype(dt.date)
    return Step(day, target.astype(dt.date), kind, reason, fit, trained_from, forecasts, warning), after


def _fit(
    ticker: str, day: dt.date, closes: np.ndarray, previous: Forecaster | None, params: ModelParams
) -> Fit:
    try:
        return train(closes, params) if previous is None else update(previous, closes, params)
    except ValueError as exc:  # too little or unusable history for this ticker
        raise TickerError(ticker, f"as of {day}: {exc}") from None


def _plausible(forecast: float, last_close: float) -> bool:
    return (
        bool(np.isfinite(forecast))
        and last_close / PLAUSIBLE_FACTOR <= forecast <= last_close * PLAUSIBLE_FACTOR
    )
