"""The compute stage: one ticker's sessions replayed on plain arrays.

Per as-of session: retrain or fine-tune (job.policy), fit, forecast the next close
with the LSTM and the naive model, put prediction intervals around both (job.intervals),
and yield that with the state after it. Arrays, dates and frozen dataclasses go in and
out, never a database or Keras object: the same call runs in-process or on Dask workers,
and a replay cut into chunks (each from the state the previous one ended with) equals one
pass. Each session sees `closes[: as_of + 1]` only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from job import intervals
from job.config import ModelParams, RetrainPolicy
from job.errors import TickerError
from job.model.core import Fit, Forecaster, train, update
from job.policy import Decision, decide
from job.scores import dm_pvalue, rmse

MODELS = ("lstm", "naive")
#: Per model, what a forecast stores: the point and its (lower, upper) at each level.
COLUMNS = ("point", "lower_80", "upper_80", "lower_95", "upper_95", "network")
#: The guard's live test: the network's own forecasts over the last year (at least LIVE_MIN
#: matured sessions) must beat naive's, one-sided Diebold-Mariano p below LIVE_P (tested every
#: night, hence stricter than 5%), before the LSTM forecast leaves the last close.
LIVE_MIN, LIVE_P = 60, 0.01
#: A one-session forecast further than this factor from the last close is not stored.
PLAUSIBLE_FACTOR = 10.0


@dataclass(frozen=True)
class Recent:
    """The ticker's latest forecasts, oldest first: what skill, the guard and the intervals
    learn from. `values[i, m]` holds COLUMNS of model MODELS[m] (NaN: no interval)."""

    targets: np.ndarray = field(default_factory=lambda: np.array([], "datetime64[D]"))
    as_of: np.ndarray = field(default_factory=lambda: np.array([], "datetime64[D]"))
    values: np.ndarray = field(default_factory=lambda: np.empty((0, len(MODELS), len(COLUMNS))))

    def add(self, target: np.datetime64, as_of: np.datetime64, values: np.ndarray) -> Recent:
        keep = intervals.WINDOW
        return Recent(
            np.append(self.targets, target)[-keep:],
            np.append(self.as_of, as_of)[-keep:],
            np.concatenate([self.values, values[None]])[-keep:],
        )


@dataclass(frozen=True)
class State:
    """What a ticker carries from one session to the next (and, stored, from night to night)."""

    forecaster: Forecaster | None = None  # None: the next session retrains
    last_retrain: np.datetime64 | None = None  # as-of session of the last from-scratch training
    revised: bool = False  # prices were re-based under the forecaster: retrain
    recent: Recent = field(default_factory=Recent)


@dataclass(frozen=True)
class Task:
    """One ticker's work, as arrays: the stored sessions (`dates`, `closes`) from far enough
    back for a retrain and for the state's recent forecasts, the as-of `sessions` to replay
    (each in `dates`) and the exchange session after each (`targets`)."""

    ticker: str
    dates: np.ndarray  # datetime64[D], ascending
    closes: np.ndarray  # float64
    sessions: np.ndarray  # datetime64[D]
    targets: np.ndarray  # datetime64[D]
    state: State
    params: ModelParams
    policy: RetrainPolicy
    retrain: bool = False  # retrain at the first session whatever the policy says

    def chunk(self, start: int, stop: int) -> Task:
        """The same work for sessions[start:stop], to start from the state sessions[start - 1] left."""
        return replace(self, sessions=self.sessions[start:stop], targets=self.targets[start:stop])


@dataclass(frozen=True)
class Step:
    """What one as-of session produced: a model version and both forecasts of the next close."""

    as_of: dt.date
    target: dt.date
    kind: Literal["retrain", "update"]
    reason: str
    fit: Fit
    trained_from: dt.date
    forecasts: np.ndarray  # (MODELS, COLUMNS), NaN where there is no interval
    warning: str | None = None

    @property
    def lstm(self) -> float:
        return float(self.forecasts[0, 0])

    @property
    def naive(self) -> float:
        return float(self.forecasts[1, 0])


def lookback(params: ModelParams) -> int:
    """Sessions before an as-of session that its results may read: a retrain's window, and
    the naive scores with the volatility of each. No result depends on anything older."""
    return max(params.train_sessions, params.update_sessions, intervals.WINDOW + intervals.VOL_RETURNS) + 1


def replay(task: Task, state: State | None = None) -> Iterator[tuple[Step, State]]:
    """Each session of `task` in order, from `state` (default `task.state`)."""
    state = task.state if state is None else state
    sigma = intervals.volatility(task.closes)  # sigma_j reads closes up to j only
    for i, (as_of, target) in enumerate(zip(task.sessions, task.targets, strict=True)):
        step, state = _session(task, state, sigma, as_of, target, force=task.retrain and i == 0)
        yield step, state


def replay_all(task: Task, state: State | None = None) -> tuple[list[Step], State]:
    """`replay` run to the end: the unit of work a Dask worker runs and returns."""
    done = list(replay(task, state))
    final = done[-1][1] if done else (task.state if state is None else state)
    return [step for step, _ in done], final


def _session(
    task: Task, state: State, sigma: np.ndarray, as_of: np.datetime64, target: np.datetime64, *, force: bool
) -> tuple[Step, State]:
    params, day = task.params, as_of.astype(dt.date)
    end = int(np.searchsorted(task.dates, as_of, side="right"))
    if end == 0 or task.dates[end - 1] != as_of:
        raise TickerError(task.ticker, f"as of {day}: no stored close for that session")
    closes, matured = task.closes[:end], _Matured(state.recent, task.dates[:end], task.closes[:end])
    forecaster = state.forecaster if state.forecaster is not None and state.forecaster.suits(params) else None
    since = (
        0 if state.last_retrain is None else end - 1 - int(np.searchsorted(task.dates, state.last_retrain))
    )
    decision = Decision("retrain", "retrain asked for") if force else decide(
        has_model=forecaster is not None, sessions_since_retrain=since, revised_since_model=state.revised,
        skill=matured.skill(task.policy.skill_window), policy=task.policy,
    )  # fmt: skip
    kind, reason, warning = decision.kind, decision.reason, None
    fit = _fit(task.ticker, day, closes, None if kind == "retrain" else forecaster, params)
    naive, network = float(closes[-1]), fit.forecaster.network_forecast(closes)
    if not _plausible(network, naive) and kind == "update":
        kind, reason = "retrain", f"the update forecast {network:g}, not a plausible close"
        fit = _fit(task.ticker, day, closes, None, params)
        network = fit.forecaster.network_forecast(closes)
    if not _plausible(network, naive):
        warning = f"{task.ticker} as of {day}: the model forecast {network:g}; the naive forecast stands in"
        network = lstm = naive
    elif params.guard and fit.forecaster.preset == "default" and not matured.network_beats_naive():
        lstm = naive  # no live evidence of skill: the guard keeps the last close
    else:
        lstm = fit.forecaster.forecast(closes)
    forecasts = np.full((len(MODELS), len(COLUMNS)), np.nan)
    forecasts[:, 0], forecasts[0, -1] = (lstm, naive), network
    for m in (1, 0):  # naive first: an LSTM forecast equal to naive's carries naive's interval
        past = matured.naive_scores(sigma) if m else matured.lstm_scores(sigma, fit.forecaster.calibration)
        for level, coverage in enumerate(intervals.LEVELS):
            bounds = intervals.interval(
                forecasts[m, 0], sigma[end - 1], past, matured.misses(m, level), coverage
            )
            forecasts[m, 1 + 2 * level : 3 + 2 * level] = bounds or (np.nan, np.nan)
        if lstm == naive:
            forecasts[0, 1:-1] = forecasts[1, 1:-1]
            break
    retrained = as_of if kind == "retrain" else state.last_retrain
    after = State(fit.forecaster, retrained, False, state.recent.add(target, as_of, forecasts))
    trained_from = task.dates[end - fit.n_closes].astype(dt.date)
    return Step(day, target.astype(dt.date), kind, reason, fit, trained_from, forecasts, warning), after


class _Matured:
    """The recent forecasts whose target close is known as of this session."""

    def __init__(self, recent: Recent, dates: np.ndarray, closes: np.ndarray) -> None:
        at = np.searchsorted(dates, recent.targets)
        known = (at < len(dates)) & (dates[np.minimum(at, len(dates) - 1)] == recent.targets)
        self.recent, self.closes, self.dates = recent, closes, dates
        self.rows, self.actual = np.flatnonzero(known), closes[at[known]]
        self.as_of_index = np.searchsorted(dates, recent.as_of[known])

    def skill(self, window: int) -> float | None:
        """RMSE_lstm / RMSE_naive over the last `window` matured forecasts; None until a full window."""
        if len(self.rows) < window:
            return None
        values, actual = self.recent.values[self.rows[-window:]], self.actual[-window:]
        naive = rmse(values[:, 1, 0], actual)
        return None if naive == 0 else rmse(values[:, 0, 0], actual) / naive

    def network_beats_naive(self) -> bool:
        """Whether the network's own recent forecasts beat naive's with a Diebold-Mariano
        p-value below LIVE_P: live, out-of-sample evidence of skill."""
        values = self.recent.values[self.rows]
        known = np.isfinite(values[:, 0, -1])
        if known.sum() < LIVE_MIN:
            return False
        network, naive, actual = values[known, 0, -1], values[known, 1, 0], self.actual[known]
        p = dm_pvalue(network - actual, naive - actual)
        return p is not None and p < LIVE_P and not self.applied_lost()

    def applied_lost(self) -> bool:
        """Whether the LSTM forecasts stored since it last left the naive one (its current run
        of moves) erred more, in squares, than naive's: then it goes back to naive."""
        values, actual = self.recent.values[self.rows], self.actual
        moved = values[:, 0, 0] != values[:, 1, 0]
        start = len(moved) - int(np.argmin(moved[::-1])) if not moved.all() else 0
        if start == len(moved):
            return False
        errors = np.square(values[start:, :, 0] - actual[start:, None])
        return bool(errors[:, 0].sum() > errors[:, 1].sum())

    def lstm_scores(self, sigma: np.ndarray, calibration: np.ndarray) -> np.ndarray:
        """The LSTM's past scores, its validation tail first to make up for few live ones."""
        live = intervals.scores(self.recent.values[self.rows, 0, 0], self.actual, sigma[self.as_of_index])
        return np.concatenate([calibration, live])

    def naive_scores(self, sigma: np.ndarray) -> np.ndarray:
        """Naive's past scores need no stored forecast: yesterday's close is always known."""
        j = np.arange(max(0, len(self.closes) - 1 - intervals.WINDOW), len(self.closes) - 1)
        return intervals.scores(self.closes[j], self.closes[j + 1], sigma[j])

    def misses(self, model: int, level: int) -> np.ndarray:
        """1 where a matured interval of this model and level missed its close, 0 where it held."""
        bounds = self.recent.values[self.rows, model, 1 + 2 * level : 3 + 2 * level]
        stored = np.isfinite(bounds).all(axis=1)
        outside = (self.actual < bounds[:, 0]) | (self.actual > bounds[:, 1])
        return outside[stored].astype(float)


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
