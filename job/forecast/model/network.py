"""How the network is trained (`train_loop`), and the same architecture in Keras.

Weights are a tuple of numpy arrays (Keras' `get_weights` order). `train_loop` runs
mini-batch Adam in numpy (job.forecast.model.gradients), so training, like forecasting
(job.forecast.model.lstm), never imports TensorFlow; each training starts from its given weights
with fresh optimizer state, and its result depends on its inputs only.

Keras serves what must be Keras: `train_tutorial`, the `seed` preset as the tutorial wrote
it, and `save_keras`, a `.keras` file written with Keras' own saving. TensorFlow is imported
on first use, quietly, with oneDNN's reordered float sums off and one thread per pool: with
more a float result would depend on the machine's core count.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from job.forecast.model import gradients
from job.forecast.model.lstm import Spec, Weights, gaussian_nll, predict

_loading = threading.Lock()


@dataclass(frozen=True)
class TrainResult:
    weights: Weights
    epochs: int
    train_loss: float
    val_loss: float | None


def load_keras() -> Any:
    """Keras, TensorFlow configured before its first op (under a lock: the thread pools
    can be set once only, and two threads importing at once would both try)."""
    with _loading:
        return _configured_keras()


@cache
def _configured_keras() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    # Before the first op: the runtime fixes its thread pools then, and refuses changes after.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return keras


def build_model(spec: Spec, *, seed: int | None = None) -> Any:
    """The architecture, with Keras' default initializers (seeded, when `seed` is given, each
    its own: a global seed would leave them to whatever else draws from Python's `random`,
    which a Dask worker's own threads do)."""
    keras = load_keras()
    init = keras.initializers

    def seeded(kind: str, offset: int) -> Any:
        return kind if seed is None else getattr(init, kind)(seed=seed + offset)

    return keras.Sequential(
        [
            keras.Input((spec.window, spec.inputs)),
            keras.layers.LSTM(
                spec.lstm_units[0], return_sequences=True,
                kernel_initializer=seeded("GlorotUniform", 0), recurrent_initializer=seeded("Orthogonal", 1),
            ),
            keras.layers.LSTM(
                spec.lstm_units[1],
                kernel_initializer=seeded("GlorotUniform", 2), recurrent_initializer=seeded("Orthogonal", 3),
            ),
            keras.layers.Dense(spec.dense_units, kernel_initializer=seeded("GlorotUniform", 4)),
            keras.layers.Dense(spec.outputs, kernel_initializer=seeded("GlorotUniform", 5)),
        ]
    )  # fmt: skip


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
    rng = np.random.default_rng(seed)
    x32, y32 = _sequences(x), np.asarray(y, np.float32)
    adam = gradients.Adam(weights, learning_rate)
    if x_val is None or y_val is None or len(y_val) == 0:
        loss = float("nan")
        for _ in range(max_epochs):
            loss = _epoch(adam, x32, y32, rng.permutation(len(y32)), batch_size)
        return TrainResult(adam.weights(), max_epochs, loss, None)
    xv, yv = _sequences(x_val), np.asarray(y_val, np.float32)
    best: TrainResult | None = None  # validation loss via `predict`: the forward of record
    best_val, stale, epoch = float("inf"), 0, 0
    for epoch in range(1, max_epochs + 1):
        loss = _epoch(adam, x32, y32, rng.permutation(len(y32)), batch_size)
        current = adam.weights()
        val_loss = float(np.mean(row_losses(predict(current, xv), yv)))
        if best is None or val_loss < best_val:
            best, best_val, stale = TrainResult(current, epoch, loss, val_loss), val_loss, 0
        else:
            stale += 1
            if stale >= patience:
                break
    assert best is not None
    return replace(best, epochs=epoch)


def _epoch(adam: gradients.Adam, x: np.ndarray, y: np.ndarray, order: np.ndarray, batch_size: int) -> float:
    """One pass of shuffled mini-batches; the mean batch loss (Keras' convention)."""
    batches = np.split(order, range(batch_size, len(order), batch_size))
    return float(np.mean([adam.step(x[rows], y[rows]) for rows in batches]))


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
