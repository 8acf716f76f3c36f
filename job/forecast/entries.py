"""The models, as entries in one list: each turns a session (job.forecast.session) into a
`Forecast`, and every stage iterates over the list, so a model is one entry here.

An entry has a `name` (its rows' `model` in `predictions`, `prediction_errors`,
`rolling_metrics` and `model_skill`), says whether its forecasts point at the session's
model version (`versioned`), and forecasts: a point, and intervals made by the session
from the entry's own past scores. The reference (`naive`) forecasts first; the others may
read what it made (`Session.made`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

import numpy as np

from job.forecast.models import PRIMARY, REFERENCE, Forecast
from job.forecast.session import Session


class Model(Protocol):
    name: str
    versioned: bool

    def forecast(self, session: Session) -> Forecast: ...


class Naive:
    """The last known close: the reference every model is measured against. Its past scores
    need no stored forecast, yesterday's close being always known."""

    name, versioned = REFERENCE, False

    def forecast(self, session: Session) -> Forecast:
        return session.forecast(self.name, session.last_close, session.track.naive_scores(session.sigma))


class Network:
    """The LSTM behind its guard: its own forecast once its live record beats naive's (else
    the last close, with naive's interval), its validation tail first among its past scores
    to make up for few live ones."""

    name, versioned = PRIMARY, True

    def forecast(self, session: Session) -> Forecast:
        naive, forecaster = session.made[REFERENCE], session.fit.forecaster
        if not session.plausible:
            point = naive.predicted_close
        elif session.guard and not forecaster.levels and not session.track.network_beats_naive():
            point = naive.predicted_close  # no live evidence of skill: the guard keeps the last close
        else:
            point = forecaster.forecast(session.bars)
        if point == naive.predicted_close:
            return replace(naive, network_close=session.network)
        past = np.concatenate([forecaster.calibration, session.track.scores(self.name, session.sigma)])
        return session.forecast(self.name, point, past, network_close=session.network)


#: The configured models, in the order people see them.
MODELS: list[Model] = [Network(), Naive()]


def model_names() -> tuple[str, ...]:
    return tuple(model.name for model in MODELS)


def versioned_names() -> tuple[str, ...]:
    """The models whose forecasts point at the model version of their session."""
    return tuple(model.name for model in MODELS if model.versioned)


def forecast_all(session: Session, models: tuple[Model, ...]) -> dict[str, Forecast]:
    """Every model's forecast of the session, the reference's first, in `models`' order."""
    for model in sorted(models, key=lambda m: m.name != REFERENCE):
        session.made[model.name] = model.forecast(session)
    return {model.name: session.made[model.name] for model in models}
