"""Forecast scores, defined once and used by the model, the tables and the reports alike.

Plain numpy on arrays of predicted and actual closes: these run for every window of every
session of a backfill, where a library call's input validation would cost more than the sum.
"""

from __future__ import annotations

import numpy as np


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    """A true root of the mean squared error (not the tutorial's |mean error|)."""
    return float(np.sqrt(np.mean(np.square(np.subtract(predicted, actual)))))


def rmse_ratio(model: float | None, naive: float | None) -> float:
    """A model's RMSE over naive's on the same targets: below 1 beats naive. NaN where
    naive's is 0 or unknown (flat prices, nothing matured): no ratio to speak of."""
    if model is None or naive is None or not naive > 0:
        return float("nan")
    return model / naive


def mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(np.abs(np.subtract(predicted, actual))))


def mape(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Mean absolute percentage error, in percent."""
    return float(100.0 * np.mean(np.abs(np.subtract(predicted, actual)) / actual))


def coverage(lower: np.ndarray, upper: np.ndarray, actual: np.ndarray) -> float:
    """Share of actual closes inside their interval."""
    return float(np.mean((lower <= actual) & (actual <= upper)))


def winkler(lower: np.ndarray, upper: np.ndarray, actual: np.ndarray, alpha: float) -> float:
    """Mean interval (Winkler) score: the width, plus 2/alpha times any miss distance. Lower
    is better; it rewards narrow intervals only while they keep their coverage."""
    miss = np.maximum(lower - actual, 0.0) + np.maximum(actual - upper, 0.0)
    return float(np.mean(upper - lower + 2.0 / alpha * miss))


def dm_pvalue(errors: np.ndarray, baseline_errors: np.ndarray) -> float | None:
    """One-sided Diebold-Mariano p-value that `errors` have a lower mean square than
    `baseline_errors`, one-step forecasts, with the Harvey-Leybourne-Newbold small-sample
    correction (Student t, n - 1 degrees of freedom). None when there is nothing to test:
    fewer than 3 pairs, or identical squared errors throughout."""
    return mean_below_zero_pvalue(np.square(errors) - np.square(baseline_errors))


def mean_below_zero_pvalue(d: np.ndarray) -> float | None:
    """Diebold-Mariano's test on loss differences `d` (one-step, HLN-corrected): the
    one-sided p-value that their mean is below zero; None for fewer than 3 or constant ones.

    With the HLN correction this is the one-sample t test, `scipy.stats.ttest_1samp(d, 0,
    alternative="less")`, which a test pins it to; it is computed on scipy.special's
    Student t distribution instead because importing scipy.stats costs every process
    0.4 s and 45 MiB, and each call 300 us against 12 (bench/backfill.py: 6 % of a backfill).
    """
    from scipy.special import stdtr

    n = len(d)
    variance = float(np.mean(np.square(d - d.mean()))) if n else 0.0
    if n < 3 or variance == 0.0:
        return None
    statistic = float(d.mean()) / np.sqrt(variance / n) * np.sqrt((n - 1) / n)
    return float(stdtr(n - 1, statistic))


def hit_rate(predicted: np.ndarray, last: np.ndarray, actual: np.ndarray) -> float | None:
    """Share of sessions whose direction the forecast got right, over the sessions where it
    forecast a move at all (None if it never did)."""
    calls = predicted != last
    if not calls.any():
        return None
    return float(np.mean(np.sign(predicted - last)[calls] == np.sign(actual - last)[calls]))
