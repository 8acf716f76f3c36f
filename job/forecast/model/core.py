"""Train, fine-tune and forecast: the model behind one small interface.

The default preset reads the last `window` sessions of whole bars (job.forecast.model.features) and
forecasts the next log return's distribution: a Gaussian's mean and log variance, trained on
its negative log-likelihood, inputs and target scaled with statistics of the training
windows only. Point forecast = last close x exp(k x mean); the standard deviation is the
network's own scale of the next return, which the intervals may use (job.forecast.compute decides).

Why `k` (the guard): on daily closes the naive forecast "tomorrow = today" is very hard to
beat and an LSTM's raw return prediction is mostly noise, so a raw forecast is usually worse
than naive. After each retrain, k is the least-squares factor mapping predicted to realized
returns on the chronological validation tail (which the weights never trained on and which
ends at the as-of session), clipped to [0, 1], and 0 unless its t-statistic reaches
MIN_T_STAT. k = 0 is exactly the naive forecast. Updates keep k (they have no held-out data
to refit it on). A validation tail is one sample, retrained on every few weeks: the compute
stage (job.forecast.compute) applies k only while the network's own live forecasts beat naive's.

The validation tail also gives the model's first out-of-sample errors (`calibration`), which
its prediction intervals start from before live errors exist (job.forecast.intervals).

The `seed` preset reproduces the tutorial (MinMax-scaled levels, window 10, batch 1, 3 epochs,
no validation, no k) for comparison only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from job.forecast import intervals
from job.forecast.model import artifact, features, gradients, lstm, network, windows
from job.forecast.model.features import OHLCV
from job.forecast.model.lstm import Spec, Weights
from job.forecast.model.windows import Preset, Scaling
from job.forecast.params import ModelParams
from job.forecast.scores import rmse

TUTORIAL_WINDOW, TUTORIAL_EPOCHS = 10, 3
MIN_TRAIN_WINDOWS = 20
MIN_T_STAT = 2.0  # about 2.3% one-sided under a normal null


@dataclass(frozen=True, eq=False)
class Forecaster:
    """A trained network with the scaling statistics of its training window, its guard
    factor and its validation-tail scores: an immutable numpy value, safe to share."""

    preset: Preset
    spec: Spec
    weights: Weights
    scaling: Scaling
    shrink: float = 1.0
    calibration: np.ndarray = field(default_factory=lambda: np.empty(0))

    @cached_property
    def artifact(self) -> tuple[bytes, str]:
        """Its stored form (job.forecast.model.artifact) and its sha256, made once and kept with it:
        a Dask worker makes it beside the training, so the process that writes the tables
        only stores it."""
        data = artifact.pack(self)
        return data, artifact.sha256(data)

    @classmethod
    def unpack(cls, data: bytes) -> Forecaster:
        """The forecaster stored as `data`; raises ValueError (or zip/JSON errors) when it is not one."""
        return cls(**artifact.unpack(data))

    def suits(self, params: ModelParams) -> bool:
        """Whether `params` describe this model's preset and architecture, so it can be updated."""
        return self.preset == params.preset and self.spec == spec_of(params)

    @property
    def scale_free(self) -> bool:
        """Whether its inputs stay the same when every price is multiplied by one factor (a
        split re-basing the history): returns do, levels do not."""
        return not self.levels

    @property
    def levels(self) -> bool:
        """Whether it forecasts close levels (the tutorial's preset) rather than returns."""
        return windows.representation(self.preset).levels

    def forecast(self, prices: OHLCV | np.ndarray) -> float:
        """The next close, given chronological bars (or closes) up to and including the as-of session."""
        bars = windows.check_closes(prices)
        return float(self.forecast_many(bars, np.array([len(bars) - 1]))[0])

    def forecast_many(self, prices: OHLCV | np.ndarray, as_of_index: np.ndarray) -> np.ndarray:
        """Forecasts of `close[j + 1]` for each j in `as_of_index`, each reading bars `[: j + 1]`."""
        mean, _ = self.distribution_many(prices, as_of_index)
        if self.levels:
            return mean
        closes = windows.check_closes(prices).close[np.asarray(as_of_index, dtype=np.int64)]
        with np.errstate(over="ignore", invalid="ignore"):  # a diverged network: callers refuse it
            return closes * np.exp(self.shrink * mean)

    def outlook(self, prices: OHLCV | np.ndarray) -> tuple[float, float]:
        """The network's own next close (k = 1, before the guard's say) and standard deviation
        of the next log return (NaN for levels), from one forward pass."""
        bars = windows.check_closes(prices)
        mean, sd = (float(v[0]) for v in self.distribution_many(bars, np.array([len(bars) - 1])))
        if self.levels:
            return mean, sd
        with np.errstate(over="ignore"):  # a diverged network: callers refuse it
            return float(bars.close[-1] * np.exp(mean)), sd

    def distribution_many(
        self, prices: OHLCV | np.ndarray, as_of_index: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per as-of index, the next value's (mean, standard deviation) as the network says
        them, unscaled: a log return's (a close and NaN for levels)."""
        bars = windows.check_closes(prices)
        idx = np.asarray(as_of_index, dtype=np.int64)
        return self.raw(windows.forecast_inputs(bars, idx, self.spec.window, self.preset))

    def raw(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unscaled network output per input row: (mean, standard deviation) of the next log
        return, or (close, NaN) for levels."""
        output = lstm.predict(self.weights, self.scaling.apply(x)).astype(np.float64)
        if self.levels:
            return self.scaling.invert(output), np.full(len(output), np.nan)
        sd = np.exp(0.5 * np.clip(output[:, 1], *lstm.LOG_VARIANCE))
        return self.scaling.invert(output[:, 0]), self.scaling.invert_scale(sd)


@dataclass(frozen=True)
class Fit:
    """What a training produced, with the figures stored in `model_versions`: losses in scaled
    units; `val_rmse`/`val_naive_rmse` in price units on the validation tail (None without
    one); `n_samples` windows trained on; `n_closes` most recent closes read."""

    forecaster: Forecaster
    epochs: int
    n_samples: int
    n_closes: int
    train_loss: float
    val_loss: float | None = None
    val_rmse: float | None = None
    val_naive_rmse: float | None = None


def spec_of(params: ModelParams) -> Spec:
    if windows.representation(params.preset).levels:
        return Spec(TUTORIAL_WINDOW, tuple(params.lstm_units), params.dense_units)
    return Spec(params.window, tuple(params.lstm_units), params.dense_units, len(features.NAMES), 2)


def _split(n_windows: int, validation_fraction: float) -> tuple[int, int]:
    """(training, validation) window counts: the validation tail is the last windows."""
    n_val = max(2, round(n_windows * validation_fraction))
    return n_windows - n_val, n_val


def min_train_closes(params: ModelParams) -> int:
    """The fewest closes a default-preset retrain accepts (one number, whatever the split)."""
    first = n = windows.min_closes(params.window, "default")
    while _split(n - first, params.validation_fraction)[0] < MIN_TRAIN_WINDOWS:
        n += 1
    return n


def train(prices: OHLCV | np.ndarray, params: ModelParams) -> Fit:
    """Train from scratch on bars (or closes) ending at the as-of session: the most recent
    `train_sessions` of them, the last `validation_fraction` of the windows held out for early
    stopping, k and the calibration scores. Deterministic for a given seed."""
    bars = windows.check_closes(prices)
    spec = spec_of(params)
    if windows.representation(params.preset).levels:
        closes = bars.close
        scaling = windows.fit_minmax(closes)
        x, y = windows.supervised(scaling.apply(closes), spec.window)
        if len(y) == 0:
            raise ValueError(f"too few closes to train: {len(closes)}")
        result = _converged(network.train_tutorial(spec, x, y, seed=params.seed, epochs=TUTORIAL_EPOCHS))
        forecaster = Forecaster(params.preset, spec, result.weights, scaling, 1.0)
        return Fit(forecaster, result.epochs, len(y), len(closes), result.train_loss)
    bars = bars[-params.train_sessions :]
    table = windows.series(bars, "default")
    x, y = windows.supervised(table, spec.window)
    n_train = _split(len(y), params.validation_fraction)[0]
    if n_train < MIN_TRAIN_WINDOWS:
        need = min_train_closes(params)
        raise ValueError(
            f"too few closes to train: {len(bars)} (need at least {need} for window {spec.window})"
        )
    scaling = windows.fit_standard(table[: windows.training_span(n_train, spec.window)])
    xs, ys = scaling.apply(x), scaling.apply_target(y)
    result = _converged(network.train_loop(
        spec, gradients.initial_weights(spec, params.seed), xs[:n_train], ys[:n_train], x_val=xs[n_train:],
        y_val=ys[n_train:], learning_rate=params.learning_rate, batch_size=params.batch_size,
        max_epochs=params.max_epochs, patience=params.patience, seed=params.seed,
    ))  # fmt: skip
    unshrunk = Forecaster("default", spec, result.weights, scaling, 1.0)
    shrink = shrink_factor(unshrunk.raw(x[n_train:])[0], y[n_train:]) if params.guard else 1.0
    forecaster = Forecaster("default", spec, result.weights, scaling, shrink)
    closes = bars.close
    # The validation windows' as-of sessions: window i's last row is session i + window - 1 + CONTEXT.
    as_of = np.arange(n_train, len(y)) + spec.window - 1 + features.CONTEXT
    predicted, actual = forecaster.forecast_many(bars, as_of), closes[as_of + 1]
    calibration = intervals.scores(predicted, actual, intervals.baseline_scale(bars, as_of))
    return Fit(
        Forecaster("default", spec, result.weights, scaling, shrink, calibration[np.isfinite(calibration)]),
        result.epochs, n_train, len(bars), result.train_loss, result.val_loss,
        rmse(predicted, actual), rmse(closes[as_of], actual),
    )  # fmt: skip


def _converged(result: network.TrainResult) -> network.TrainResult:
    """The result, or a ValueError when training diverged: weights that are not finite
    forecast nothing and must never be stored as a model."""
    if not all(np.isfinite(w).all() for w in result.weights):
        raise ValueError("training diverged (weights not finite): lower NIGHTCAST_MODEL__LEARNING_RATE")
    return result


def shrink_factor(predicted: np.ndarray, realized: np.ndarray) -> float:
    """Least-squares k in [0, 1] for realized ~ k x predicted, or 0 without evidence of skill
    (a t-statistic below MIN_T_STAT): a chance k makes forecasts worse than naive."""
    power = float(np.dot(predicted, predicted))
    if power == 0.0 or len(predicted) < 3:
        return 0.0
    k = float(np.dot(predicted, realized)) / power
    residual = realized - k * predicted
    standard_error = float(np.sqrt(np.dot(residual, residual) / (len(predicted) - 1) / power))
    if standard_error > 0.0 and k / standard_error < MIN_T_STAT:
        return 0.0
    return float(np.clip(k, 0.0, 1.0))


def update(previous: Forecaster, prices: OHLCV | np.ndarray, params: ModelParams) -> Fit:
    """Fine-tune `previous` on the windows of the last `update_sessions` bars (a fixed cost),
    keeping its scaling, k and calibration: the inputs stay on the scale it learned, and
    there is no held-out data to refit the others on."""
    bars = windows.check_closes(prices)
    if not previous.suits(params):
        raise ValueError("the model's architecture differs from the parameters: retrain instead of update")
    # A default-preset window needs CONTEXT earlier sessions for its first row.
    recent = bars[-params.update_sessions - windows.min_closes(0, previous.preset) :]
    x, y = windows.supervised(windows.series(recent, previous.preset), previous.spec.window)
    if len(y) == 0:
        raise ValueError(f"too few closes to update: {len(bars)}")
    result = _converged(network.train_loop(
        previous.spec, previous.weights, previous.scaling.apply(x), previous.scaling.apply_target(y),
        x_val=None, y_val=None, learning_rate=params.update_learning_rate, batch_size=params.batch_size,
        max_epochs=params.update_epochs, patience=params.patience, seed=params.seed,
    ))  # fmt: skip
    forecaster = replace(previous, weights=result.weights)
    return Fit(forecaster, result.epochs, len(y), len(recent), result.train_loss)
