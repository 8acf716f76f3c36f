"""The architecture and its forward pass in numpy: what a forecast needs, without TensorFlow.

The equations are Keras' LSTM (gates i, f, c, o; sigmoid and tanh) and Dense layers, so the
weights Keras trains (job.model.network) forecast here unchanged; a test pins the two
together on random weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Weights = tuple[np.ndarray, ...]


@dataclass(frozen=True)
class Spec:
    """Architecture: LSTM(units[0], return_sequences) -> LSTM(units[1]) -> Dense(dense) -> Dense(1)."""

    window: int
    lstm_units: tuple[int, int]
    dense_units: int


def shapes(spec: Spec) -> list[tuple[int, ...]]:
    """The shapes of a Spec's weight arrays, in Keras' `get_weights` order."""
    (u1, u2), d = spec.lstm_units, spec.dense_units
    lstms = [shape for n, u in ((1, u1), (u1, u2)) for shape in ((n, 4 * u), (u, 4 * u), (4 * u,))]
    return [*lstms, (u2, d), (d,), (d, 1), (1,)]


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
    """The network's output for each row of `x` (shape (n, window)), float32, in numpy."""
    k1, r1, b1, k2, r2, b2, d1, e1, d2, e2 = weights
    hidden = _lstm(np.asarray(x, np.float32)[:, :, None], k1, r1, b1)
    last = _lstm(hidden, k2, r2, b2)[:, -1]
    return ((last @ d1 + e1) @ d2 + e2)[:, 0]
