"""The whole bar as model input: the range proxy as defined, unusable bars not read, and no
look-ahead through open, high, low or volume, from the features to stored intervals."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from job.forecast.compute import State, Task, replay
from job.forecast.model import features
from job.forecast.model.features import OHLCV
from job.forecast.params import ModelParams, RetrainPolicy
from job.ingest.sources import SampleSource
from job.support.calendar import get_sessions
from tests.conftest import TINY_MODEL

XNYS = get_sessions("XNYS")


def sample_bars() -> tuple[np.ndarray, OHLCV]:
    frame = SampleSource().fetch("TSLA", dt.date(2010, 1, 1), dt.date(2030, 1, 1))
    columns = (frame[c].to_numpy(dtype=float) for c in ("close", "open", "high", "low", "volume"))
    return np.array(frame["date"].tolist(), "datetime64[D]"), OHLCV(*columns)


def test_the_variance_proxy_is_rogers_satchell_plus_the_squared_gap() -> None:
    bars = OHLCV(np.array([100.0, 104.0]), np.array([99.0, 101.0]), np.array([101.0, 106.0]),
                 np.array([98.0, 100.0]), np.array([1e6, 2e6]))  # fmt: skip
    rs = np.log(106 / 104) * np.log(106 / 101) + np.log(100 / 104) * np.log(100 / 101)
    assert features.variance_proxy(bars)[1] == pytest.approx(rs + np.log(101 / 100) ** 2, rel=1e-12)


@pytest.mark.parametrize(
    "open_, high, low",
    [
        (np.nan, 106.0, 100.0),  # missing
        (0.0, 106.0, 100.0),  # not positive
        (101.0, 103.0, 100.0),  # close 104 above the high
        (101.0, 106.0, 104.5),  # low above the close
        (104.0, 104.0, 104.0),  # no range: a feed that knew only the close
    ],
)
def test_an_unusable_bar_falls_back_to_the_squared_return(open_: float, high: float, low: float) -> None:
    bars = OHLCV(np.array([100.0, 104.0]), np.array([99.0, open_]), np.array([101.0, high]),
                 np.array([98.0, low]), np.array([1e6, 0.0]))  # fmt: skip
    assert not features.usable(bars)[1]
    assert features.variance_proxy(bars)[1] == pytest.approx(np.log(1.04) ** 2, rel=1e-12)


def test_closes_alone_read_as_bars_with_nothing_else_known() -> None:
    _, bars = sample_bars()
    alone = features.table(bars.close)
    assert np.isfinite(alone[features.CONTEXT :]).all()
    assert (alone[features.CONTEXT :, features.NAMES.index("gap")] == 0).all()
    assert (alone[features.CONTEXT :, features.NAMES.index("volume")] == 0).all()
    assert np.array_equal(alone[:, 0], features.table(bars)[:, 0], equal_nan=True)  # same returns


def test_a_session_reads_no_bar_after_it() -> None:
    _, bars = sample_bars()
    j = 300
    table, scale = features.table(bars), features.har_scale(bars, np.arange(j + 1))
    tampered = OHLCV(
        bars.close.copy(), bars.open.copy(), bars.high.copy(), bars.low.copy(), bars.volume.copy()
    )
    for values in (tampered.open, tampered.high, tampered.low, tampered.volume):
        values[j + 1 :] *= np.linspace(0.5, 3, len(values) - j - 1)
    assert np.array_equal(features.table(tampered)[: j + 1], table[: j + 1], equal_nan=True)
    assert np.array_equal(features.har_scale(tampered, np.arange(j + 1)), scale, equal_nan=True)
    assert not np.array_equal(features.table(tampered)[j + 1 :], table[j + 1 :], equal_nan=True)


def _har_one_solve_each(bars: OHLCV, positions: np.ndarray) -> np.ndarray:
    """The baseline as its definition reads: one least-squares fit per position."""
    values = features.table(bars)
    x = np.column_stack([np.ones(len(bars)), values[:, 1], values[:, 4], values[:, 5]])
    y = np.append(values[1:, 1], np.nan)
    out = np.full(len(positions), np.nan)
    for row, j in enumerate(positions):
        lo = max(features.CONTEXT, j - features.HAR_SESSIONS)
        if j - lo < 4 * x.shape[1] or not np.isfinite(x[j]).all():
            continue
        beta, *_ = np.linalg.lstsq(x[lo:j], y[lo:j], rcond=None)
        residual = y[lo:j] - x[lo:j] @ beta
        out[row] = np.sqrt(np.exp(x[j] @ beta + 0.5 * np.mean(np.square(residual))))
    return out


@pytest.mark.parametrize("flat", [False, True], ids=["sample", "with a flat stretch"])
def test_the_baseline_at_all_positions_at_once_equals_one_fit_each(flat: bool) -> None:
    _, bars = sample_bars()
    if flat:  # a halted stock: the same bar for 600 sessions, collinear columns in a window
        bars = OHLCV(*(np.r_[v[:200], np.full(600, v[200]), v[800:]] for v in (
            bars.close, bars.open, bars.high, bars.low, bars.volume)))  # fmt: skip
    positions = np.r_[np.arange(len(bars)), [len(bars) - 1, 5, 700]]  # any order, repeats
    expected = _har_one_solve_each(bars, positions)
    got = features.har_scale(bars, positions)
    assert np.array_equal(np.isnan(got), np.isnan(expected)) and np.isfinite(got).sum() > 100
    np.testing.assert_allclose(got, expected, rtol=1e-9)


@pytest.mark.slow
def test_tampering_open_high_low_volume_leaves_earlier_forecasts_and_intervals_unchanged() -> None:
    dates, bars = sample_bars()
    params = ModelParams(**{**TINY_MODEL, "train_sessions": 300})
    sessions = dates[-60:-1]
    targets = np.array([XNYS.next_session(d.astype(dt.date)) for d in sessions], "datetime64[D]")
    cut = 30  # bars after sessions[cut] are tampered

    def forecasts(prices: OHLCV) -> list[dict[str, object]]:
        task = Task(
            "TSLA", dates, prices.close, sessions, targets, State(), params, RetrainPolicy(), bars=prices
        )
        return [{m: f.row() for m, f in step.forecasts.items()} for step, _ in replay(task)]

    at = int(np.searchsorted(dates, sessions[cut])) + 1
    later = np.arange(len(bars)) >= at
    tampered = OHLCV(
        bars.close,
        np.where(later, bars.open * 1.3, bars.open),
        np.where(later, bars.high * 1.3, bars.high),
        np.where(later, bars.low * 0.7, bars.low),
        np.where(later, bars.volume * 5, bars.volume),
    )
    honest, changed = forecasts(bars), forecasts(tampered)
    assert changed[: cut + 1] == honest[: cut + 1]
    assert changed[cut + 1 :] != honest[cut + 1 :]
    assert all(isinstance(row["naive"]["scale"], float) for row in honest)
