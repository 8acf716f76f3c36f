"""Train, fine-tune and forecast: the model behind one small interface.

What the default preset learns: the next session's log return from the last `window` log
returns, both scaled by mean/std of the training windows only. Forecast = last close x
exp(k x predicted return).

The forecast discipline (why `k` exists): on daily closes the naive forecast "tomorrow =
today" is very hard to beat, and an LSTM's raw return prediction is mostly noise, so a raw
forecast is usually *worse* than naive. After training, `k` is fit by least squares on the
chronological validation tail, which the weights were not trained on and which ends at the
as-of session: k = clip(sum(p*r) / sum(p^2), 0, 1), where p are the predicted and r the
realized log returns, and k = 0 unless that fit is significant (t-statistic >= 2: see
`shrink_factor`). k = 0 is exactly the naive forecast, so on the validation tail the
shrunk forecast's squared return error is never above naive's; `k` is stored with the model
and used for every later forecast, including after nightly updates (an update has no
held-out data to refit it on honestly; the retrain policy watches live skill instead). The
final model is not refit on the validation tail: a retrain's weights never saw it, which is
what makes `k` and `val_rmse` out-of-sample (`val_rmse` is optimistic by one fitted scalar).

The `seed` preset reproduces the tutorial (MinMax-scaled levels, window 10, batch 1, 3 epochs,
no validation, no shrink) for comparison only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from job.config import ModelParams
from job.model import network, windows
from job.model.network import Spec, Weights
from job.model.windows import Preset, Scaling

TUTORIAL_WINDOW = 10
TUTORIAL_EPOCHS = 3
MIN_TRAIN_WINDOWS = 20
MIN_T_STAT = 2.0


@dataclass(frozen=True, eq=False)
class Forecaster:
    """A trained network and the scaling statistics (and shrink factor) of its training window.

    An immutable value: weights are numpy arrays and forecasting is numpy-only, so a
    Forecaster is safe to keep, share and compare across trainings.
    """

    preset: Preset
    spec: Spec
    weights: Weights
    scaling: Scaling
    shrink: float = 1.0

    def suits(self, params: ModelParams) -> bool:
        """Whether `params` describe this model's preset and architecture, so it can be updated."""
        return self.preset == params.preset and self.spec == spec_of(params)

    def forecast(self, closes: np.ndarray) -> float:
        """The next close, given chronological closes up to and including the as-of session."""
        closes = windows.check_closes(closes)
        return float(self.forecast_many(closes, np.array([len(closes) - 1]))[0])

    def forecast_many(self, closes: np.ndarray, as_of_index: np.ndarray) -> np.ndarray:
        """One-step forecasts of `closes[j + 1]` for each j in `as_of_index`, in one batched pass.

        Each forecast reads only `closes[: j + 1]`; with a frozen model this is a walk-forward.
        """
        closes = windows.check_closes(closes)
        idx = np.asarray(as_of_index, dtype=np.int64)
        x = windows.forecast_inputs(closes, idx, self.spec.window, self.preset)
        raw = _network_output(self, x)
        if self.preset == "seed":
            return raw
        return closes[idx] * np.exp(self.shrink * raw)


def _network_output(forecaster: Forecaster, x: np.ndarray) -> np.ndarray:
    """Unscaled network output (a log return, or a close for the seed preset) per input row."""
    scaled = network.predict(forecaster.weights, forecaster.scaling.apply(x))
    return forecaster.scaling.invert(scaled.astype(np.float64))


@dataclass(frozen=True)
class Fit:
    """What a training produced, with the figures stored in `model_versions`.

    Losses are MSE in scaled units; `val_rmse` / `val_naive_rmse` are in price units on the
    validation tail (None when there is none: updates and the seed preset). `n_samples` is the
    number of windows the weights were trained on (validation tail excluded); `n_closes` the
    number of most recent closes the training read, which dates `trained_from`.
    """

    forecaster: Forecaster
    epochs: int
    n_samples: int
    n_closes: int
    train_loss: float
    val_loss: float | None
    val_rmse: float | None
    val_naive_rmse: float | None


def spec_of(params: ModelParams) -> Spec:
    window = TUTORIAL_WINDOW if params.preset == "seed" else params.window
    return Spec(window, tuple(params.lstm_units), params.dense_units)


def train(closes: np.ndarray, params: ModelParams) -> Fit:
    """Train from scratch on the given closes, which must end at the as-of session.

    The default preset uses the most recent `params.train_sessions` closes, holds out the last
    `validation_fraction` of the windows for early stopping and the shrink factor, and is
    deterministic for a given `params.seed` on one machine. The seed preset trains on all it
    is given, the tutorial's way.
    """
    closes = windows.check_closes(closes)
    if params.preset == "seed":
        return _train_tutorial(closes, params)
    spec = spec_of(params)
    closes = closes[-params.train_sessions :]
    returns = windows.series(closes, "default")
    x, y = windows.supervised(returns, spec.window)
    n_train = _split(len(y), params.validation_fraction)[0]
    if n_train < MIN_TRAIN_WINDOWS:
        raise ValueError(
            f"too few closes to train: {len(closes)} (need at least {min_train_closes(params)} "
            f"for window {spec.window})"
        )
    scaling = windows.fit_standard(returns[: windows.training_span(n_train, spec.window)])
    result = network.train_loop(
        spec,
        network.initial_weights(spec, params.seed),
        scaling.apply(x[:n_train]),
        scaling.apply(y[:n_train]),
        x_val=scaling.apply(x[n_train:]),
        y_val=scaling.apply(y[n_train:]),
        learning_rate=params.learning_rate,
        batch_size=params.batch_size,
        max_epochs=params.max_epochs,
        patience=params.patience,
        seed=params.seed,
    )
    unshrunk = Forecaster("default", spec, result.weights, scaling, 1.0)
    predicted, realized = _network_output(unshrunk, x[n_train:]), y[n_train:]
    shrink = shrink_factor(predicted, realized) if params.guard else 1.0
    # Window i's as-of close is closes[i + window]; its target is closes[i + window + 1].
    previous = closes[n_train + spec.window : -1]
    actual = closes[n_train + spec.window + 1 :]
    return Fit(
        forecaster=Forecaster("default", spec, result.weights, scaling, shrink),
        epochs=result.epochs,
        n_samples=n_train,
        n_closes=len(closes),
        train_loss=result.train_loss,
        val_loss=result.val_loss,
        val_rmse=_rmse(previous * np.exp(shrink * predicted) - actual),
        val_naive_rmse=_rmse(previous - actual),
    )


def _split(n_windows: int, validation_fraction: float) -> tuple[int, int]:
    """(training, validation) window counts: the validation tail is the last windows."""
    n_val = max(2, round(n_windows * validation_fraction))
    return n_windows - n_val, n_val


def min_train_closes(params: ModelParams) -> int:
    """The fewest closes a default-preset retrain accepts (one number, whatever the split)."""
    n = params.window + 1
    while _split(n - 1 - params.window, params.validation_fraction)[0] < MIN_TRAIN_WINDOWS:
        n += 1
    return n


def shrink_factor(predicted: np.ndarray, realized: np.ndarray) -> float:
    """Least-squares k in [0, 1] for realized ~ k x predicted, or 0 without evidence of skill.

    A k fit on a few hundred noisy returns is positive by chance about half the time, and a
    chance k makes the forecast worse than naive out of sample. So k is kept only when its
    t-statistic reaches MIN_T_STAT (about 5% one-sided); otherwise the forecast is naive.
    """
    power = float(np.dot(predicted, predicted))
    if power == 0.0 or len(predicted) < 3:
        return 0.0
    k = float(np.dot(predicted, realized)) / power
    residual = realized - k * predicted
    standard_error = float(np.sqrt(np.dot(residual, residual) / (len(predicted) - 1) / power))
    if standard_error > 0.0 and k / standard_error < MIN_T_STAT:
        return 0.0
    return float(np.clip(k, 0.0, 1.0))


def update(previous: Forecaster, closes: np.ndarray, params: ModelParams) -> Fit:
    """Fine-tune `previous` on the windows of the most recent `params.update_sessions` closes.

    Cost is fixed by `update_sessions`, not by the history length. The previous model's
    scaling statistics and shrink factor are kept: the network's inputs stay on the scale it
    learned, and there is no held-out data to refit `k` on. Architecture and preset are the
    previous model's; when `params` asks for another architecture, retrain instead.
    """
    closes = windows.check_closes(closes)
    if not previous.suits(params):
        raise ValueError("the model's architecture differs from the parameters: retrain instead of update")
    recent = closes[-params.update_sessions :]
    x, y = windows.supervised(windows.series(recent, previous.preset), previous.spec.window)
    if len(y) == 0:
        raise ValueError(f"too few closes to update: {len(closes)}")
    result = network.train_loop(
        previous.spec,
        previous.weights,
        previous.scaling.apply(x),
        previous.scaling.apply(y),
        x_val=None,
        y_val=None,
        learning_rate=params.update_learning_rate,
        batch_size=params.batch_size,
        max_epochs=params.update_epochs,
        patience=params.patience,
        seed=params.seed,
    )
    forecaster = Forecaster(previous.preset, previous.spec, result.weights, previous.scaling, previous.shrink)
    return Fit(forecaster, result.epochs, len(y), len(recent), result.train_loss, None, None, None)


def _train_tutorial(closes: np.ndarray, params: ModelParams) -> Fit:
    spec = spec_of(params)
    scaling = windows.fit_minmax(closes)
    x, y = windows.supervised(scaling.apply(closes), spec.window)
    if len(y) == 0:
        raise ValueError(f"too few closes to train: {len(closes)}")
    result = network.train_tutorial(spec, x, y, seed=params.seed, epochs=TUTORIAL_EPOCHS)
    forecaster = Forecaster("seed", spec, result.weights, scaling, 1.0)
    return Fit(forecaster, result.epochs, len(y), len(closes), result.train_loss, None, None, None)


def _rmse(errors: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(errors))))
