"""The compute stage on plain arrays, without a database: what each session produces, and
that a replay cut into chunks, or run on other machines, gives exactly the same."""

from __future__ import annotations

import datetime as dt
import pickle
from dataclasses import replace

import numpy as np
import pytest

from job.errors import TickerError
from job.forecast.compute import State, Task, replay, replay_all
from job.forecast.entries import model_names
from job.forecast.models import NUMERIC
from job.forecast.params import ModelParams, RetrainPolicy
from job.forecast.scores import rmse
from job.forecast.session import Recent
from job.ingest.sources import SampleSource
from job.support.calendar import get_sessions
from tests.conftest import TINY_MODEL

XNYS = get_sessions("XNYS")
PARAMS = ModelParams(**TINY_MODEL)
POLICY = RetrainPolicy(retrain_every=5, skill_window=5)


def task(n_sessions: int = 12, closes: np.ndarray | None = None) -> Task:
    frame = SampleSource().fetch("TSLA", dt.date(2019, 1, 1), dt.date(2020, 7, 31))
    dates = np.array(frame["date"].tolist(), "datetime64[D]")
    values = frame["close"].to_numpy() if closes is None else closes
    sessions = dates[-n_sessions - 1 : -1]
    targets = np.array([XNYS.next_session(d.astype(dt.date)) for d in sessions], "datetime64[D]")
    return Task("TSLA", dates, values, sessions, targets, State(), PARAMS, POLICY)


@pytest.fixture(scope="module")
def whole() -> list:
    return list(replay(task()))


def test_each_session_retrains_or_updates_and_forecasts_the_next(whole: list) -> None:
    steps = [step for step, _ in whole]
    assert [s.kind for s in steps] == (["retrain"] + ["update"] * 4) * 2 + ["retrain", "update"]
    assert steps[0].reason == "no usable model" and "5 sessions since the last retrain" in steps[5].reason
    closes = task().closes
    for i, step in enumerate(steps):
        assert step.naive == closes[-13 + i]  # the as-of close
        assert np.isfinite(step.lstm) and step.lstm != step.naive  # guard off: the network's own
        assert step.target == XNYS.next_session(step.as_of)


def test_a_chunked_replay_equals_one_pass(whole: list) -> None:
    """Chunks start from the state the previous chunk ended with, as Dask workers do."""
    work = task()
    first, state = replay_all(work.chunk(0, 7))
    second, _ = replay_all(pickle.loads(pickle.dumps(work.chunk(7, 12))), pickle.loads(pickle.dumps(state)))
    for (a, _), b in zip(whole, first + second, strict=True):
        assert (a.as_of, a.kind, a.lstm, a.naive) == (b.as_of, b.kind, b.lstm, b.naive)
        assert all(
            np.array_equal(x, y)
            for x, y in zip(a.fit.forecaster.weights, b.fit.forecaster.weights, strict=True)
        )


def test_nothing_after_an_as_of_session_reaches_its_forecast(whole: list) -> None:
    honest = task()
    tampered = honest.closes.copy()
    tampered[-7:] *= 10  # every close after the sixth as-of session
    steps = [step for step, _ in replay(task(closes=tampered))]
    assert [s.lstm for s in steps[:6]] == [s.lstm for s, _ in whole[:6]]
    assert steps[6].naive != whole[6][0].naive


def test_a_forecast_that_is_not_a_plausible_close_is_never_kept(whole: list) -> None:
    """A model gone wrong (here: weights scaled up) makes the session retrain; a training
    that diverges (weights not finite) fails the ticker rather than store such a model."""
    _, state = whole[0]
    assert state.forecaster is not None
    broken = replace(state.forecaster, weights=tuple(w * 1e4 for w in state.forecaster.weights))
    work = task(n_sessions=1)
    state = replace(state, forecaster=broken, last_retrain=work.dates[-3])  # an update is due
    step, _ = next(replay(work, state))
    assert step.kind == "retrain" and "not a plausible close" in step.reason
    assert np.isfinite(step.lstm) and step.warning is None

    hopeless = replace(work, params=PARAMS.model_copy(update={"learning_rate": 1e6}))
    with pytest.raises(TickerError, match="training diverged"):
        next(replay(hopeless, state))


def test_too_little_history_names_the_ticker_and_session() -> None:
    work = task(n_sessions=1)
    short = replace(work, dates=work.dates[-30:], closes=work.closes[-30:])
    with pytest.raises(TickerError, match=r"^TSLA: as of 2020-07-30: too few closes to train: 29"):
        list(replay(short))
    error = pickle.loads(pickle.dumps(TickerError("TSLA", "boom")))  # crosses process boundaries whole
    assert (error.ticker, str(error)) == ("TSLA", "TSLA: boom")


def test_intervals_take_the_networks_scale_once_it_has_beaten_the_baseline_on_matured_sessions() -> None:
    """Volatility that alternates 8x from one session to the next: stored network scales that
    knew it beat any regression on the range, so the next intervals are scaled by the network
    and its scores are the errors over its own stored scales."""
    n, first = 1200, 1200 - 251
    sigma = np.where(np.arange(n) % 2 == 0, 0.005, 0.04)  # sd of the return into the next close
    returns = sigma[:-1] * np.random.default_rng(0).standard_normal(n - 1)
    closes = 100 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))
    dates = np.array(XNYS.sessions_in_range(dt.date(2015, 1, 1), dt.date(2030, 1, 1))[:n], "datetime64[D]")
    made = np.arange(first, n - 1)  # 250 matured forecasts, as of these sessions
    column = {name: np.full(len(made), np.nan) for name in NUMERIC}
    values = {"predicted_close": closes[made], "network_close": closes[made], "network_scale": sigma[made]}
    recent = Recent(dates[made + 1], dates[made], {model: column | values for model in model_names()})
    work = Task("ALT", dates, closes, dates[-1:], np.array([XNYS.next_session(dates[-1].astype(dt.date))],
                "datetime64[D]"), State(recent=recent), PARAMS, POLICY)  # fmt: skip
    step, _ = next(replay(work))
    naive = step.forecasts["naive"]
    assert naive.scale_source == "network" and naive.scale == naive.network_scale
    assert step.forecasts["lstm"].scale_source == "network"
    q = np.log(naive.upper_80 / naive.predicted_close) / naive.scale
    scores = np.abs(np.log(closes[made + 1] / closes[made])) / sigma[made]
    assert np.isclose(scores, q, rtol=1e-9).any()


def _walk_forward(
    returns: np.ndarray, sessions: int = 250, seed: int = 42
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lstm, naive, actual) of a guarded replay over the last `sessions` of a synthetic series."""
    days = np.array(
        XNYS.sessions_in_range(dt.date(2016, 1, 1), dt.date(2030, 1, 1))[: len(returns)], "datetime64[D]"
    )
    closes = 100 * np.exp(np.cumsum(returns))
    params = ModelParams(
        **{
            **TINY_MODEL,
            "guard": True,
            "train_sessions": 400,
            "max_epochs": 30,
            "learning_rate": 0.01,
            "patience": 5,
            "seed": seed,
        }
    )
    as_of = days[-sessions - 1 : -1]
    work = Task("SYN", days, closes, as_of, days[-sessions:], State(), params, RetrainPolicy())
    steps = [step for step, _ in replay(work)]
    return np.array([s.lstm for s in steps]), np.array([s.naive for s in steps]), closes[-sessions:]


@pytest.mark.slow
def test_the_guard_lets_real_skill_through() -> None:
    """Returns with real memory (AR(1), 0.5): once the network's live forecasts beat naive's
    significantly, the stored LSTM forecast uses them, and beats naive (by less than the AR's
    13% at this tiny size: the distribution's loss weighs the mean by the scale it learns).
    Whether a network this tiny learns the memory from 400 sessions depends on its initial
    draw (seeds 4 to 6 do, 0 to 3 do not): the seed is one that learns, since what is tested
    is the guard's answer to a network with skill."""
    rng = np.random.default_rng(0)
    noise, returns = rng.normal(0, 0.01, 1300), np.zeros(1300)
    for i in range(1, len(returns)):
        returns[i] = 0.5 * returns[i - 1] + noise[i]
    lstm, naive, actual = _walk_forward(returns, seed=5)
    assert np.mean(lstm != naive) > 0.3
    assert rmse(lstm, actual) < rmse(naive, actual)


@pytest.mark.slow
def test_without_live_evidence_the_guard_keeps_the_last_close() -> None:
    """A random walk has nothing to learn: whatever validation tails say by chance, every
    stored LSTM forecast is the naive one."""
    lstm, naive, _ = _walk_forward(np.random.default_rng(1).normal(0, 0.01, 1300))
    assert np.array_equal(lstm, naive)
