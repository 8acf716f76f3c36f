"""Turning a close series into supervised windows, and scaling them without look-ahead.

Pure numpy, no TensorFlow: these functions decide what the network may see, so they are
the place where look-ahead would creep in, and they are tested on their own.

Two representations exist:
- `default` learns log returns: input = the last `window` log returns, target = the next one.
- `seed` (the tutorial) learns close levels: input = the last `window` closes, target = the next.

Scaling is one affine map `(value - center) / scale` for inputs and target alike, fit on the
training values only (mean/std for returns, min/max for levels, like sklearn's MinMaxScaler).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Preset = Literal["default", "seed"]


@dataclass(frozen=True)
class Scaling:
    """`scaled = (value - center) / scale`; fit on training values only, stored with the model."""

    kind: Literal["standard", "minmax"]
    center: float
    scale: float

    def apply(self, values: np.ndarray) -> np.ndarray:
        return (values - self.center) / self.scale

    def invert(self, scaled: np.ndarray) -> np.ndarray:
        return scaled * self.scale + self.center


def fit_standard(values: np.ndarray) -> Scaling:
    """scikit-learn's StandardScaler on the given (training) values: mean and standard
    deviation (a flat series gets scale 1, not a division by zero)."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(np.asarray(values, np.float64).reshape(-1, 1))
    return Scaling("standard", float(scaler.mean_[0]), float(scaler.scale_[0]))


def fit_minmax(values: np.ndarray) -> Scaling:
    """scikit-learn's MinMaxScaler to [0, 1] on the given (training) values: center = min,
    scale = max - min (1 for a flat series)."""
    from sklearn.preprocessing import MinMaxScaler

    scaler = MinMaxScaler().fit(np.asarray(values, np.float64).reshape(-1, 1))
    return Scaling("minmax", float(scaler.data_min_[0]), float(1.0 / scaler.scale_[0]))


def check_closes(closes: np.ndarray) -> np.ndarray:
    """A 1-D float64 array of finite, positive closes, or a ValueError saying what is wrong."""
    array = np.asarray(closes, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"closes must be a 1-D array, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError("closes must be finite and positive")
    return array


def series(closes: np.ndarray, preset: Preset) -> np.ndarray:
    """The values the network reads: log returns (len n - 1) or the closes themselves."""
    return np.diff(np.log(closes)) if preset == "default" else closes


def min_closes(window: int, preset: Preset) -> int:
    """Closes needed for one forecast input."""
    return window + 1 if preset == "default" else window


def supervised(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """All (input, target) pairs: x[i] = values[i : i + window], y[i] = values[i + window].

    Window `i` reads nothing after index `i + window`, so the last pair's target is the last
    value given: whoever slices `values` decides what the model may see.
    """
    if len(values) <= window:
        return np.empty((0, window)), np.empty(0)
    x = np.lib.stride_tricks.sliding_window_view(values[:-1], window)
    return x, values[window:]


def training_span(n_train_windows: int, window: int) -> int:
    """How many leading values the first `n_train_windows` windows read (inputs and targets)."""
    return n_train_windows + window


def forecast_inputs(closes: np.ndarray, as_of_index: np.ndarray, window: int, preset: Preset) -> np.ndarray:
    """Network inputs (unscaled) for forecasting the close after each `closes[as_of_index]`.

    Row `j` reads closes up to and including `as_of_index[j]`, never later ones.
    """
    idx = np.asarray(as_of_index, dtype=np.int64)
    need = min_closes(window, preset)
    if idx.size and (idx.min() < need - 1 or idx.max() >= len(closes)):
        raise ValueError(f"as_of_index must lie in [{need - 1}, {len(closes) - 1}] (window {window})")
    values = series(closes, preset)
    # For returns, value k is the return into close k + 1, so the as-of close j ends at value j - 1.
    last = idx - 1 if preset == "default" else idx
    all_windows = np.lib.stride_tricks.sliding_window_view(values, window)  # row s = values[s : s+window]
    return all_windows[last - window + 1]
