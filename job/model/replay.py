"""The compute stage: one ticker's sessions replayed on plain arrays.

Given a ticker's closes, the model state before the first session and the as-of sessions to
replay, `replay` decides for each session whether to retrain or fine-tune, fits, forecasts
the next session with the LSTM and the naive model, and yields what it produced together
with the state after it. No database and no Keras object crosses this boundary: in and out
are numpy arrays, dates and frozen dataclasses, so the same call runs in-process, on a local
Dask worker or on a remote cluster, and a replay cut into chunks (each starting from the
state the previous one ended with) gives exactly what one pass gives.

Nothing after an as-of session reaches its fit or its forecast: each session sees
`closes[: as_of + 1]` only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from job.config import ModelParams, RetrainPolicy
from job.errors import TickerError
from job.model.core import Fit, Forecaster, train, update
from job.model.policy import Decision, decide
from job.scores import rmse

#: A one-session forecast further than this factor from the last close is not stored.
PLAUSIBLE_FACTOR = 10.0


@dataclass(frozen=True)
class Recent:
    """The ticker's latest forecasts, oldest first: what rolling skill is measured on."""

    targets: np.ndarray = field(default_factory=lambda: np.array([], "datetime64[D]"))
    lstm: np.ndarray = field(default_factory=lambda: np.array([]))
    naive: np.ndarray = field(default_factory=lambda: np.array([]))

    def add(self, target: np.datetime64, lstm: float, naive: float, keep: int) -> Recent:
        return Recent(
            np.append(self.targets, target)[-keep:],
            np.append(self.lstm, lstm)[-keep:],
            np.append(self.naive, naive)[-keep:],
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
    """One ticker's work: everything `replay` reads, as arrays.

    `dates`/`closes` are the stored sessions from far enough back for a retrain and for the
    state's last retrain and recent forecasts; `sessions` are the as-of sessions to replay
    (each in `dates`) and `targets` the exchange session after each.
    """

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
        """The same work for sessions[start:stop]; its state is the one sessions[start - 1] left."""
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
    lstm: float
    naive: float
    warning: str | None = None


def recent_size(policy: RetrainPolicy) -> int:
    """How many forecasts `State.recent` keeps (the planner reads as many from the tables)."""
    return policy.skill_window + 1


def replay(task: Task, state: State | None = None) -> Iterator[tuple[Step, State]]:
    """Each session of `task` in order, from `state` (default `task.state`)."""
    state = task.state if state is None else state
    for i, (as_of, target) in enumerate(zip(task.sessions, task.targets, strict=True)):
        step, state = _session(task, state, as_of, target, force=task.retrain and i == 0)
        yield step, state


def replay_all(task: Task, state: State | None = None) -> tuple[list[Step], State]:
    """`replay` run to the end: the unit of work a Dask worker runs and returns."""
    steps, final = [], task.state if state is None else state
    for step, after in replay(task, final):
        steps.append(step)
        final = after
    return steps, final


def _session(
    task: Task, state: State, as_of: np.datetime64, target: np.datetime64, *, force: bool
) -> tuple[Step, State]:
    params, day = task.params, as_of.astype(dt.date)
    end = int(np.searchsorted(task.dates, as_of, side="right"))
    if end == 0 or task.dates[end - 1] != as_of:
        raise TickerError(task.ticker, f"as of {day}: no stored close for that session")
    closes = task.closes[:end]  # nothing after the as-of session reaches the model
    forecaster = state.forecaster if state.forecaster is not None and state.forecaster.suits(params) else None
    decision = (
        Decision("retrain", "retrain asked for")
        if force
        else decide(
            has_model=forecaster is not None,
            sessions_since_retrain=_sessions_since(task.dates, state.last_retrain, end),
            revised_since_model=state.revised,
            skill=_skill(state.recent, task.dates[:end], closes, task.policy.skill_window),
            policy=task.policy,
        )
    )
    kind, reason, warning = decision.kind, decision.reason, None
    fit = _fit(task.ticker, day, closes, None if kind == "retrain" else forecaster, params)
    naive = float(closes[-1])
    lstm = fit.forecaster.forecast(closes)
    if not _plausible(lstm, naive) and kind == "update":
        kind, reason = "retrain", f"the update forecast {lstm:g}, not a plausible close"
        fit = _fit(task.ticker, day, closes, None, params)
        lstm = fit.forecaster.forecast(closes)
    if not _plausible(lstm, naive):
        warning = f"{task.ticker} as of {day}: the model forecast {lstm:g}; the naive forecast stands in"
        lstm = naive
    retrained = as_of if kind == "retrain" else state.last_retrain
    after = State(
        fit.forecaster, retrained, False, state.recent.add(target, lstm, naive, recent_size(task.policy))
    )
    step = Step(
        day,
        target.astype(dt.date),
        kind,
        reason,
        fit,
        task.dates[end - fit.n_closes].astype(dt.date),
        lstm,
        naive,
        warning,
    )
    return step, after


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


def _sessions_since(dates: np.ndarray, last_retrain: np.datetime64 | None, end: int) -> int:
    """Stored sessions from the last retrain's as-of session to this one."""
    if last_retrain is None:
        return 0
    return end - 1 - int(np.searchsorted(dates, last_retrain))


def _skill(recent: Recent, dates: np.ndarray, closes: np.ndarray, window: int) -> float | None:
    """RMSE_lstm / RMSE_naive over the last `window` matured forecasts; None until a full window."""
    at = np.searchsorted(dates, recent.targets)
    matured = (at < len(dates)) & (dates[np.minimum(at, len(dates) - 1)] == recent.targets)
    if matured.sum() < window:
        return None
    rows = np.flatnonzero(matured)[-window:]
    actual = closes[at[rows]]
    naive = rmse(recent.naive[rows], actual)
    return None if naive == 0 else rmse(recent.lstm[rows], actual) / naive
