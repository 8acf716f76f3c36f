"""Prediction intervals that keep their coverage on returns whose volatility clusters.

Conformal prediction on each model's own past out-of-sample errors, in log-return units and
scaled by the volatility of the day they were made, with adaptive conformal inference
(Gibbs & Candès 2021) correcting the level from the misses of recent intervals:

- volatility sigma_j: an exponentially weighted (lambda 0.94) root mean square of the last
  VOL_RETURNS log returns up to close j. A fixed window, so sigma_j is the same number
  whatever history a process happens to hold, and it never reads a close after j.
- score of a forecast f made as of j: |log(actual / f)| / sigma_j.
- interval at level 1 - alpha as of t: f_t * exp(+-q sigma_t), q the ceil((n+1)(1 - a_t))/n
  empirical quantile of the last n <= WINDOW scores, where
  a_t = alpha + GAMMA * sum(alpha - miss_s) over the last WINDOW matured intervals: ACI's
  update summed over a fixed memory, so that a nightly run and a replay of the same sessions
  derive the same a_t from the same stored intervals. When a_t <= 0 the widest past score
  is used (ACI would give an infinite interval; every number stored is finite).

Tuned on the 25 development series (bench/intervals.py): the settings are the textbook ones
(RiskMetrics' lambda, a year of scores) but for GAMMA, chosen among 0.005-0.02.
"""

from __future__ import annotations

import numpy as np

LAMBDA, VOL_RETURNS = 0.94, 100
WINDOW = 250
GAMMA = 0.02


def volatility(closes: np.ndarray) -> np.ndarray:
    """sigma_j for each close j (NaN until VOL_RETURNS returns exist)."""
    squared = np.square(np.diff(np.log(closes)))
    sigma = np.full(len(closes), np.nan)
    if len(squared) >= VOL_RETURNS:
        weights = LAMBDA ** np.arange(VOL_RETURNS - 1, -1, -1)
        windows = np.lib.stride_tricks.sliding_window_view(squared, VOL_RETURNS)
        sigma[VOL_RETURNS:] = np.sqrt(windows @ (weights / weights.sum()))
    return sigma


def scores(forecast: np.ndarray, actual: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Absolute log errors in units of the volatility of the day each forecast was made."""
    with np.errstate(divide="ignore", invalid="ignore"):  # a diverged model's scores are dropped
        return np.abs(np.log(actual / forecast)) / sigma


def interval(
    forecast: float, sigma: float, past: np.ndarray, misses: np.ndarray, coverage: float
) -> tuple[float, float] | None:
    """(lower, upper) at `coverage` around `forecast`, or None without past scores or volatility.

    `past`: scores of matured forecasts, oldest first; `misses`: 1/0 per matured interval of
    this level, oldest first.
    """
    past = past[np.isfinite(past)][-WINDOW:]
    if not len(past) or not np.isfinite(sigma) or sigma <= 0:
        return None
    alpha = 1.0 - coverage
    adapted = alpha + GAMMA * float(np.sum(alpha - misses[-WINDOW:]))
    rank = len(past) if adapted <= 0 else min(len(past), int(np.ceil((len(past) + 1) * (1 - adapted))))
    q = float(np.sort(past)[max(rank, 1) - 1])
    return forecast * float(np.exp(-q * sigma)), forecast * float(np.exp(q * sigma))
