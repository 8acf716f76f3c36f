"""Prediction intervals that keep their coverage on returns whose volatility clusters.

Conformal prediction on each model's own past out-of-sample errors, in log-return units and
scaled by a forecast of the next return's spread made on the day, with adaptive conformal
inference (Gibbs & Candes 2021) correcting the level from the misses of recent intervals:

- scale sigma_j: the forecast, as of close j, of the next log return's standard deviation,
  from one of two sources, chosen per ticker and session (`choose`):
  the transparent `baseline`, a HAR regression on the day's range (job.forecast.model.features:
  Rogers-Satchell plus the overnight gap, fit on a fixed span up to j), or the `network`'s
  own Gaussian scale, once its live forecasts have scored better (log score) on the
  ticker's own matured sessions with a one-sided test at SCALE_P over at least SCALE_MIN.
- score of a forecast f made as of j: |log(actual / f)| / sigma_j, sigma of today's source.
- interval at level 1 - alpha as of t: f_t * exp(+-q sigma_t), q the ceil((n+1)(1 - a_t))/n
  empirical quantile of the last n <= WINDOW scores, where
  a_t = alpha + GAMMA * sum(alpha - miss_s) over the last WINDOW matured intervals: ACI's
  update summed over a fixed memory, so that a nightly run and a replay of the same sessions
  derive the same a_t from the same stored intervals. When a_t <= 0 the widest past score
  is used (ACI would give an infinite interval; every number stored is finite).

Tuned on the 25 development series (bench/intervals.py): the settings are the textbook ones
(a year of scores) but for GAMMA, chosen among 0.005-0.02: 0.02 swings the 95% level's
width (a worse interval score), 0.005 lets one series' coverage stray over 5 points.
"""

from __future__ import annotations

import numpy as np

from job.forecast.model import features
from job.forecast.model.features import OHLCV
from job.forecast.scores import mean_below_zero_pvalue

WINDOW = 250
GAMMA = 0.01
#: Sessions before j that the baseline scale of session j reads.
SCALE_SESSIONS = features.HAR_SESSIONS + features.CONTEXT
#: The network's scale replaces the baseline's once its log score beats it, one-sided p
#: below SCALE_P over at least SCALE_MIN matured sessions (tested every night: strict).
SCALE_MIN, SCALE_P = 60, 0.01


def baseline_scale(bars: OHLCV | np.ndarray, positions: np.ndarray | None = None) -> np.ndarray:
    """sigma_j of the baseline as of each position (default: every close; NaN until the
    regression has enough sessions)."""
    bars = features.as_ohlcv(bars)
    positions = np.arange(len(bars)) if positions is None else np.asarray(positions, np.int64)
    return features.har_scale(bars, positions)


def log_score(realized: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Per session, the Gaussian log score (negative log-likelihood, constant dropped) of the
    realized return under sigma rescaled by its best constant over the sessions: the intervals
    rescale any scale by their own quantile, so only its shape over time may count."""
    ratio = np.square(realized) / np.square(sigma)
    level = float(np.mean(ratio))
    return np.log(level * np.square(sigma)) + ratio / level


def choose(realized: np.ndarray, network: np.ndarray, baseline: np.ndarray) -> str:
    """The source of today's scale, from matured sessions: each one's realized log return and
    both sources' scales as of its as-of session (NaN where a source had none)."""
    known = np.isfinite(network) & np.isfinite(baseline) & (network > 0) & (baseline > 0)
    known &= np.isfinite(realized)
    if known.sum() < SCALE_MIN or not np.any(realized[known]):
        return "baseline"
    r = realized[known][-WINDOW:]
    d = log_score(r, network[known][-WINDOW:]) - log_score(r, baseline[known][-WINDOW:])
    p = mean_below_zero_pvalue(d)
    return "network" if p is not None and p < SCALE_P else "baseline"


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
