"""The architecture and its forward pass in numpy: what a forecast needs, without TensorFlow.

The equations are Keras' LSTM (gates i, f, c, o; sigmoid and tanh) and Dense layers, in
Keras' weight layout: the weights job.forecast.model.network trains forecast the same here
and in the Keras model `nightcast export` writes; a test pins the two together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Weights = tuple[np.ndarray, ...]


@dataclass(frozen=True)
class Spec:
    """Architecture: LSTM(units[0], return_sequences) -> LSTM(units[1]) -> Dense(dense) ->
    Dense(outputs), reading `inputs` values per session. One output is a point (trained on
    squared error); two are a Gaussian's mean and log variance (trained on its negative
    log-likelihood)."""

    window: int
    lstm_units: tuple[int, int]
    dense_units: int
    inputs: int = 1
    outputs: int = 1


def shapes(spec: Spec) -> list[tuple[int, ...]]:
    """The shapes of a Spec's weight arrays, in Keras' `get_weights` order."""
    (u1, u2), d = spec.lstm_units, spec.dense_units
    pairs = ((spec.inputs, u1), (u1, u2))
    lstms = [shape for n, u in pairs for shape in ((n, 4 * u), (u, 4 * u), (4 * u,))]
    return [*lstms, (u2, d), (d,), (d, spec.outputs), (spec.outputs,)]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * z) + 1.0)  # overflow-free, same as 1 / (1 + exp(-z))


def _lstm(inputs: np.ndarray, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Keras LSTM equations (gates i, f, c, o; sigmoid/tanh); returns the whole sequence."""
    batch, steps, _ = inputs.shape
    units = recurrent.shape[0]
    h = np.zeros((batch, units), np.float32)
    c = np.zeros((batch, units), np.float32)
    projected = inputs @ kernel + bias  # input part of all steps at once
    outputs = np.empty((batch, steps, units), np.float32)
    for t in range(steps):
        z = projected[:, t] + h @ recurrent
        gates = _sigmoid(z)  # all four at once: fewer, larger numpy calls; g's slot goes unused
        c = gates[:, units : 2 * units] * c + gates[:, :units] * np.tanh(z[:, 2 * units : 3 * units])
        h = gates[:, 3 * units :] * np.tanh(c)
        outputs[:, t] = h
    return outputs


def predict(weights: Weights, x: np.ndarray) -> np.ndarray:
    """The network's output for each row of `x` (shape (n, window), or (n, window, inputs)),
    float32, in numpy: shape (n,) for one output, (n, outputs) for more."""
    k1, r1, b1, k2, r2, b2, d1, e1, d2, e2 = weights
    x = np.asarray(x, np.float32)
    hidden = _lstm(x[:, :, None] if x.ndim == 2 else x, k1, r1, b1)
    last = _lstm(hidden, k2, r2, b2)[:, -1]
    out = (last @ d1 + e1) @ d2 + e2
    return out[:, 0] if out.shape[1] == 1 else out


#: Log variances the distribution's output is held to: a standard deviation between 0.7%
#: and 150 times the training returns' own, so one flat or wild stretch cannot overflow.
LOG_VARIANCE = (-10.0, 10.0)


def gaussian_nll(output: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per row, the Gaussian negative log-likelihood (constant dropped) of `y` under the
    network's (mean, log variance): the proper score it is trained and validated on."""
    log_var = np.clip(output[:, 1], *LOG_VARIANCE)
    return 0.5 * (log_var + np.square(y - output[:, 0]) * np.exp(-log_var))
