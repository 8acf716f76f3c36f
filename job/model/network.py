"""The Keras network: stock layers and Adam, and how they are trained (`train_loop`).

Weights are a tuple of numpy arrays (Keras' `get_weights` order) outside a training call;
forecasts run in numpy (job.model.lstm). A backfill trains hundreds of times, and building a
model and tracing its step costs more than most trainings: so one model, Adam and traced
step per architecture serve every training of a process, each starting from its given
weights with fresh optimizer state (its result depends on its inputs only).
`train_tutorial` is the `seed` preset as the tutorial wrote it; `save_keras` writes a
`.keras` file with Keras' own saving.

TensorFlow is imported on first use, quietly, with oneDNN's reordered float sums off and one
thread per pool: tiny ops gain nothing from more, and with more a float result would depend
on the machine's core count, so a Dask worker's rows would not equal the in-process ones.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache, wraps
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from job.model.lstm import LOG_VARIANCE, Spec, Weights, gaussian_nll, predict

T = TypeVar("T")
_building = threading.RLock()  # re-entrant: a trainer's build loads Keras and builds a model


def _once(function: Callable[..., T]) -> Callable[..., T]:
    """`functools.cache` that builds each value once even when threads first ask at the
    same moment: a cache alone lets each thread build (and trace) its own."""
    cached = cache(function)

    @wraps(function)
    def once(*args: Any) -> T:
        with _building:
            return cached(*args)

    return once


@dataclass(frozen=True)
class TrainResult:
    weights: Weights
    epochs: int
    train_loss: float
    val_loss: float | None


@_once
def load_keras() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    # Before the first op: the runtime fixes its thread pools then, and refuses changes after.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return keras


def build_model(spec: Spec, *, unroll: bool = False, seed: int | None = None) -> Any:
    """The architecture, with Keras' default initializers (seeded, when `seed` is given, each
    its own: a global seed would leave them to whatever else draws from Python's `random`,
    which a Dask worker's own threads do). `unroll` buys faster steps for a slower trace."""
    keras = load_keras()
    init = keras.initializers

    def seeded(kind: str, offset: int) -> Any:
        return kind if seed is None else getattr(init, kind)(seed=seed + offset)

    return keras.Sequential(
        [
            keras.Input((spec.window, spec.inputs)),
            keras.layers.LSTM(
                spec.lstm_units[0], return_sequences=True, unroll=unroll,
                kernel_initializer=seeded("GlorotUniform", 0), recurrent_initializer=seeded("Orthogonal", 1),
            ),
            keras.layers.LSTM(
                spec.lstm_units[1], unroll=unroll,
                kernel_initializer=seeded("GlorotUniform", 2), recurrent_initializer=seeded("Orthogonal", 3),
            ),
            keras.layers.Dense(spec.dense_units, kernel_initializer=seeded("GlorotUniform", 4)),
            keras.layers.Dense(spec.outputs, kernel_initializer=seeded("GlorotUniform", 5)),
        ]
    )  # fmt: skip


@_once
def initial_weights(spec: Spec, seed: int) -> Weights:
    """What Keras initializes a new model of `spec` to under `seed` (computed once)."""
    return tuple(build_model(spec, seed=seed).get_weights())


class _Trainer:
    """One model, Adam and traced training step for an architecture; a lock serializes use."""

    def __init__(self, spec: Spec) -> None:
        keras = load_keras()
        import tensorflow as tf

        self.lock = threading.Lock()
        self.model = build_model(spec, unroll=True)
        self.optimizer = keras.optimizers.Adam()
        self.optimizer.build(self.model.trainable_variables)

        low, high = LOG_VARIANCE

        def loss_of(output: Any, y: Any) -> Any:  # lstm.predict's losses, in TensorFlow
            if spec.outputs == 1:
                return tf.reduce_mean(tf.square(output[:, 0] - y))
            log_var = tf.clip_by_value(output[:, 1], low, high)
            return tf.reduce_mean(0.5 * (log_var + tf.square(y - output[:, 0]) * tf.exp(-log_var)))

        signature = [tf.TensorSpec([None, spec.window, spec.inputs]), tf.TensorSpec([None])]

        @tf.function(input_signature=signature)
        def step(x: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                loss = loss_of(self.model(x, training=True), y)
            grads = tape.gradient(loss, self.model.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables, strict=True))
            return loss

        shapes = [tf.TensorSpec(w.shape) for w in self.model.weights]

        @tf.function(input_signature=[shapes, tf.TensorSpec([])])
        def start(weights: list[Any], learning_rate: Any) -> None:
            for variable, value in zip(self.model.weights, weights, strict=True):
                variable.assign(value)
            for variable in self.optimizer.variables:  # moments, step count and learning rate
                variable.assign(tf.zeros_like(variable))
            self.optimizer.learning_rate.assign(learning_rate)  # after its zeroing: same variable

        # Their concrete functions: called directly, no argument matching on every step.
        self._step, self._start = step.get_concrete_function(), start.get_concrete_function()

    def start(self, weights: Weights, learning_rate: float) -> None:
        """From `weights`, with a fresh optimizer. Traced: its thirty-odd assignments, one
        eager op at a time, would cost a good share of a nightly update."""
        self._start(list(weights), np.float32(learning_rate))

    def weights(self) -> Weights:
        return tuple(self.model.get_weights())

    def epoch(self, x: np.ndarray, y: np.ndarray, order: np.ndarray, batch_size: int) -> float:
        """One pass of shuffled mini-batches; the mean batch loss (Keras' convention)."""
        batches = np.split(order, range(batch_size, len(order), batch_size))
        return float(np.mean([float(self._step(x[rows], y[rows])) for rows in batches]))


@_once
def _trainer(spec: Spec) -> _Trainer:
    return _Trainer(spec)


def train_loop(
    spec: Spec,
    weights: Weights,
    x: np.ndarray,
    y: np.ndarray,
    *,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    learning_rate: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    seed: int,
) -> TrainResult:
    """Shuffled mini-batch Adam from `weights`, on squared error or, for a distribution,
    its negative log-likelihood (`row_losses`). `x`: (n, window, inputs), or (n, window).

    With a validation set: early stopping after `patience` epochs without improvement and the
    best epoch's weights restored. Without one: exactly `max_epochs` epochs (fine-tuning).
    """
    trainer = _trainer(spec)
    rng = np.random.default_rng(seed)
    x32, y32 = _sequences(x), np.asarray(y, np.float32)
    with trainer.lock:
        trainer.start(weights, learning_rate)
        if x_val is None or y_val is None or len(y_val) == 0:
            loss = float("nan")
            for _ in range(max_epochs):
                loss = trainer.epoch(x32, y32, rng.permutation(len(y32)), batch_size)
            return TrainResult(trainer.weights(), max_epochs, loss, None)
        xv, yv = _sequences(x_val), np.asarray(y_val, np.float32)
        best: TrainResult | None = None  # validation loss via `predict`: the forward of record
        best_val, stale, epoch = float("inf"), 0, 0
        for epoch in range(1, max_epochs + 1):
            loss = trainer.epoch(x32, y32, rng.permutation(len(y32)), batch_size)
            current = trainer.weights()
            val_loss = float(np.mean(row_losses(predict(current, xv), yv)))
            if best is None or val_loss < best_val:
                best, best_val, stale = TrainResult(current, epoch, loss, val_loss), val_loss, 0
            else:
                stale += 1
                if stale >= patience:
                    break
        assert best is not None
        return replace(best, epochs=epoch)


def _sequences(x: np.ndarray) -> np.ndarray:
    """Inputs as float32 (n, window, inputs): a window of one series gains its inputs axis."""
    x = np.asarray(x, np.float32)
    return x[:, :, None] if x.ndim == 2 else x


def row_losses(output: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per row, the loss a network of this output is trained on."""
    return np.square(output - y) if output.ndim == 1 else gaussian_nll(output, y)


def train_tutorial(spec: Spec, x: np.ndarray, y: np.ndarray, *, seed: int, epochs: int = 3) -> TrainResult:
    """The tutorial's training, as written: new model, `fit(batch_size=1)`, nothing reused."""
    keras = load_keras()
    keras.utils.set_random_seed(seed)  # for fit's shuffling
    model = build_model(spec, seed=seed)
    model.compile(optimizer="adam", loss="mean_squared_error")
    history = model.fit(_sequences(x), y.astype(np.float32), batch_size=1, epochs=epochs, verbose=0)
    return TrainResult(tuple(model.get_weights()), epochs, float(history.history["loss"][-1]), None)


def save_keras(spec: Spec, weights: Weights, path: Path) -> None:
    """The network as a `.keras` file (Keras' own format; `keras.saving.load_model` opens it)."""
    model = build_model(spec)
    model.set_weights(weights)
    model.save(path)
