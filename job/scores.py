"""Forecast scores, defined once and used by the model, the tables and the reports alike.

Plain numpy on arrays of predicted and actual closes: these run for every window of every
session of a backfill, where a library call's input validation would cost more than the sum.
"""

from __future__ import annotations

import numpy as np


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    """A true root of the mean squared error (not the tutorial's |mean error|)."""
    return float(np.sqrt(np.mean(np.square(np.subtract(predicted, actual)))))


def mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(np.abs(np.subtract(predicted, actual))))


def mape(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Mean absolute percentage error, in percent."""
    return float(100.0 * np.mean(np.abs(np.subtract(predicted, actual)) / actual))
