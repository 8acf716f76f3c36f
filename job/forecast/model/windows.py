"""Turning a close series into supervised windows, and scaling them without look-ahead.

Pure numpy, no TensorFlow: these functions decide what the network may see, so they are
the place where look-ahead would creep in, and they are tested on their own.

Two representations exist:
- `default` learns from whole bars: input = the last `window` rows of the feature table
  (job.forecast.model.features: return, range, gap, volume, multi-scale range), target = the next
  log return.
- `seed` (the tutorial) learns close levels: input = the last `window` closes, target = the next.

Scaling is one affine map `(value - center) / scale` per input column, the target sharing
its column's (the return's, or the level's), fit on the training values only (mean/std per
column for the default features, min/max for levels, like sklearn's MinMaxScaler).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from job.forecast.model import features
from job.forecast.model.features import OHLCV


@dataclass(frozen=True)
class Representation:
    """What a preset's network reads and forecasts, which every step of training and
    forecasting asks of it: whole bars' log returns (`levels` off: scale-free, a mean and a
    spread of the next return, shrunk by the guard), or close levels, min-max scaled, the
    next close itself (the tutorial's)."""

    levels: bool

    @property
    def context(self) -> int:
        """Earlier sessions the first row of its series needs."""
        return 0 if self.levels else features.CONTEXT


#: The presets by the name `NIGHTCAST_MODEL__PRESET` and the stored artifacts give them.
PRESETS = {"default": Representation(levels=False), "seed": Representation(levels=True)}
Preset = str  # a key of PRESETS


def representation(preset: Preset) -> Representation:
    return PRESETS[preset]


#: The target's column: the return's in a feature table, the only one of a series.
TARGET = features.RET


@dataclass(frozen=True)
class Scaling:
    """`scaled = (value - center) / scale` per column (the last axis of a feature table; one
    column for a 1-D series); fit on training values only, stored with the model."""

    kind: Literal["standard", "minmax"]
    center: tuple[float, ...]
    scale: tuple[float, ...]

    def apply(self, values: np.ndarray) -> np.ndarray:
        if len(self.center) == 1:
            return (values - self.center[0]) / self.scale[0]
        return (values - np.array(self.center)) / np.array(self.scale)

    def apply_target(self, values: np.ndarray) -> np.ndarray:
        """Targets on their column's scale."""
        return (values - self.center[TARGET]) / self.scale[TARGET]

    def invert(self, scaled: np.ndarray) -> np.ndarray:
        """Scaled targets (the network's mean) back in their units."""
        return scaled * self.scale[TARGET] + self.center[TARGET]

    def invert_scale(self, scaled_sd: np.ndarray) -> np.ndarray:
        """A standard deviation of scaled targets back in their units."""
        return scaled_sd * self.scale[TARGET]


def fit_standard(values: np.ndarray) -> Scaling:
    """Mean and standard deviation of the given (training) values, per column, as
    scikit-learn's StandardScaler has them (a column constant up to rounding gets scale 1,
    not a division by almost zero). In numpy: importing scikit-learn would cost a nightly
    run more than its training."""
    array = np.asarray(values, np.float64).reshape(len(values), -1)
    mean, std = array.mean(axis=0), array.std(axis=0)
    constant = std <= 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0)
    return Scaling("standard", tuple(map(float, mean)), tuple(map(float, np.where(constant, 1.0, std))))


def fit_minmax(values: np.ndarray) -> Scaling:
    """scikit-learn's MinMaxScaler to [0, 1] on the given (training) values: center = min,
    scale = max - min (1 for a flat series)."""
    from sklearn.preprocessing import MinMaxScaler

    scaler = MinMaxScaler().fit(np.asarray(values, np.float64).reshape(-1, 1))
    return Scaling("minmax", (float(scaler.data_min_[0]),), (float(1.0 / scaler.scale_[0]),))


def check_closes(prices: OHLCV | np.ndarray) -> OHLCV:
    """Bars (or closes alone) whose closes are a 1-D array of finite, positive float64
    values, or a ValueError saying what is wrong."""
    bars = prices if isinstance(prices, OHLCV) else None
    array = np.asarray(prices.close if bars is not None else prices, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"closes must be a 1-D array, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError("closes must be finite and positive")
    return bars if bars is not None else OHLCV(array)


def series(bars: OHLCV | np.ndarray, preset: Preset) -> np.ndarray:
    """The values the network reads: the feature table (job.forecast.model.features) from its
    first complete row, row k being session k + CONTEXT; for levels, the closes."""
    bars = features.as_ohlcv(bars)
    return bars.close if PRESETS[preset].levels else features.table(bars)[features.CONTEXT :]


def _offset(preset: Preset) -> int:
    """The session of a series' first value."""
    return PRESETS[preset].context


def min_closes(window: int, preset: Preset) -> int:
    """Closes needed for one forecast input."""
    return window + _offset(preset)


def supervised(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """All (input, target) pairs: x[i] = values[i : i + window], y[i] = values[i + window]
    (for a table, its rows, and the target its TARGET column: the return).

    Window `i` reads nothing after index `i + window`, so the last pair's target is the last
    value given: whoever slices `values` decides what the model may see.
    """
    shape = (window, *values.shape[1:])
    if len(values) <= window:
        return np.empty((0, *shape)), np.empty(0)
    x = _windows(values[:-1], window)
    return x, values[window:] if values.ndim == 1 else values[window:, TARGET]


def _windows(values: np.ndarray, window: int) -> np.ndarray:
    """Row s = values[s : s + window] (rows of a table keep their columns last)."""
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)
    return view if values.ndim == 1 else np.swapaxes(view, 1, 2)


def training_span(n_train_windows: int, window: int) -> int:
    """How many leading values the first `n_train_windows` windows read (inputs and targets)."""
    return n_train_windows + window


def forecast_inputs(
    bars: OHLCV | np.ndarray, as_of_index: np.ndarray, window: int, preset: Preset
) -> np.ndarray:
    """Network inputs (unscaled) for forecasting the close after each `bars.close[as_of_index]`.

    Row `j` reads bars up to and including `as_of_index[j]`, never later ones.
    """
    bars = features.as_ohlcv(bars)
    idx = np.asarray(as_of_index, dtype=np.int64)
    need = min_closes(window, preset)
    if idx.size and (idx.min() < need - 1 or idx.max() >= len(bars)):
        raise ValueError(f"as_of_index must lie in [{need - 1}, {len(bars) - 1}] (window {window})")
    if not idx.size:
        return np.empty((0, window, *series(bars[:0], preset).shape[1:]))
    # Only the span the rows read: each value reads a fixed span back, so it is the same number.
    start = int(idx.min()) - need + 1
    values = series(bars[start : int(idx.max()) + 1], preset)
    last = idx - start - _offset(preset)  # the value of the as-of session itself
    return _windows(values, window)[last - window + 1]
