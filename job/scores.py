"""Forecast scores, defined once and used by the model, the tables and the reports alike.

Plain numpy on arrays of predicted and actual closes; no database, no TensorFlow.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, root_mean_squared_error


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    """A true root of the mean squared error (not the tutorial's |mean error|)."""
    return float(root_mean_squared_error(actual, predicted))


def mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(mean_absolute_error(actual, predicted))


def mape(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Mean absolute percentage error, in percent."""
    return 100.0 * float(mean_absolute_percentage_error(actual, predicted))
