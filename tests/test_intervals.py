"""Prediction intervals: the baseline scale without look-ahead, the live choice of scale, the
conformal quantile and its adaptive level as defined, and coverage that holds on returns
whose volatility clusters."""

from __future__ import annotations

import numpy as np
import pytest

from job.forecast import intervals
from job.forecast.model import features
from job.forecast.model.features import OHLCV
from job.forecast.models import LEVELS


def garch_closes(n: int, seed: int = 0) -> np.ndarray:
    """A GARCH(1,1) path: calm and stormy spells, like real daily returns."""
    rng = np.random.default_rng(seed)
    variance, returns = 1e-4, np.empty(n)
    for i in range(n):
        returns[i] = np.sqrt(variance) * rng.standard_t(5) / np.sqrt(5 / 3)
        variance = 2e-6 + 0.09 * returns[i] ** 2 + 0.89 * variance
    return 100 * np.exp(np.cumsum(returns))


def test_the_baseline_scale_is_a_har_regression_on_the_range_and_reads_nothing_later() -> None:
    closes = garch_closes(800)
    sigma = intervals.baseline_scale(closes)
    assert np.isnan(sigma[: features.CONTEXT + 16]).all() and np.isfinite(sigma[100:]).all()
    j = 700  # the regression on the HAR_SESSIONS rows before j, applied to row j
    table = features.table(OHLCV(closes))
    x = np.column_stack([np.ones(len(closes)), table[:, 1], table[:, 4], table[:, 5]])
    rows = np.arange(j - features.HAR_SESSIONS, j)
    beta = np.linalg.lstsq(x[rows], table[rows + 1, 1], rcond=None)[0]
    residual = table[rows + 1, 1] - x[rows] @ beta
    assert sigma[j] == pytest.approx(np.sqrt(np.exp(x[j] @ beta + np.mean(residual**2) / 2)), rel=1e-9)
    tampered = closes.copy()
    tampered[j + 1 :] *= 3
    assert np.array_equal(intervals.baseline_scale(tampered)[: j + 1], sigma[: j + 1], equal_nan=True)


def test_the_network_scale_is_chosen_only_when_its_log_score_is_significantly_better() -> None:
    rng = np.random.default_rng(0)
    true = np.exp(np.cumsum(rng.normal(0, 0.1, 400))) * 0.01  # a wandering volatility
    realized = true * rng.standard_normal(400)
    flat = np.full(400, 0.01)
    assert intervals.choose(realized, true, flat) == "network"
    assert intervals.choose(realized, flat, true) == "baseline"
    assert intervals.choose(realized, true * 2, true) == "baseline"  # a constant factor is no skill
    few = intervals.SCALE_MIN - 1
    assert intervals.choose(realized[:few], true[:few], flat[:few]) == "baseline"
    unknown = np.where(np.arange(400) < 350, np.nan, true)  # too few sessions with a network scale
    assert intervals.choose(realized, unknown, flat) == "baseline"


def test_the_quantile_is_the_conformal_rank_and_the_level_adapts_to_misses() -> None:
    past = np.arange(1.0, 21.0)  # 20 scores 1..20
    # rank ceil(21 * 0.8) = 17: the 17th smallest score
    assert intervals.interval(100.0, 0.01, past, np.array([]), 0.80) == pytest.approx(
        (100 * np.exp(-0.17), 100 * np.exp(0.17))
    )
    # more misses than the 20% the level allows: a_t = 0.2 + 0.01 * 20 * (0.2 - 1) = 0.04
    assert intervals.GAMMA == 0.01
    upper = intervals.interval(100.0, 0.01, past, np.ones(20), 0.80)[1]  # type: ignore[index]
    assert upper == pytest.approx(100 * np.exp(0.01 * 20))  # rank ceil(21 * 0.96) = 21 > 20: widest
    # a_t <= 0 would be an infinite interval: the widest past score stands in, finite
    assert intervals.interval(100.0, 0.01, past, np.ones(100), 0.80)[1] == pytest.approx(upper)  # type: ignore[index]
    assert intervals.interval(100.0, np.nan, past, np.array([]), 0.80) is None  # no volatility yet
    assert intervals.interval(100.0, 0.01, np.array([np.inf]), np.array([]), 0.80) is None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_walk_forward_coverage_holds_on_clustered_volatility(seed: int) -> None:
    closes = garch_closes(1600, seed)
    sigma = intervals.baseline_scale(closes)
    scores = intervals.scores(closes[:-1], closes[1:], sigma[:-1])  # naive forecasts, as of j
    coverages = [level / 100 for level in LEVELS]
    misses: dict[float, list[float]] = {c: [] for c in coverages}
    for j in range(350, len(closes) - 1):
        for coverage in coverages:
            bounds = intervals.interval(
                closes[j], sigma[j], scores[j - 250 : j], np.array(misses[coverage]), coverage
            )
            assert bounds is not None
            misses[coverage].append(float(not bounds[0] <= closes[j + 1] <= bounds[1]))
    for coverage, missed in misses.items():
        assert 1 - np.mean(missed) == pytest.approx(coverage, abs=0.02)
