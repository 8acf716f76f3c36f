"""A training step of the network in numpy: forward pass, backpropagation through time, Adam.

Why not Keras: on this network (two LSTMs of 50 units over 10 sessions, batches of 64) a
step here costs about what a traced Keras step does, but a process that trains then never
imports TensorFlow (seconds, in every nightly run, backfill and Dask worker) nor traces a
step. The equations are Keras' own (LSTM gates i, f, c, o with sigmoid and tanh, forget-gate
bias 1, Glorot-uniform kernels, orthogonal recurrent kernels; Adam with epsilon 1e-7), and a
test pins the loss and every gradient to `keras.layers.LSTM` under `tf.GradientTape`.

BLAS runs on one thread (the first step sets it for the process, `_process_settings`):
float sums whose order depends on the thread count would make a Dask worker's rows differ
from in-process ones.
"""

from __future__ import annotations

import ctypes
from functools import cache

import numpy as np

from job.forecast.model.lstm import LOG_VARIANCE, Spec, Weights, shapes

BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7  # Keras' Adam defaults
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def initial_weights(spec: Spec, seed: int) -> Weights:
    """Keras' default initialization of `spec`, drawn from numpy under `seed`: Glorot-uniform
    kernels, orthogonal recurrent kernels, zero biases but an LSTM's forget gate open (1)."""
    _process_settings()  # the orthogonal draw's QR runs on BLAS too
    rng = np.random.default_rng(seed)
    weights = []
    for index, shape in enumerate(shapes(spec)):  # (kernel, recurrent, bias) x 2, (kernel, bias) x 2
        if index in (1, 4):
            weights.append(_orthogonal(rng, shape))
        elif len(shape) == 2:
            limit = np.sqrt(6.0 / (shape[0] + shape[1]))
            weights.append(rng.uniform(-limit, limit, shape).astype(np.float32))
        else:
            bias = np.zeros(shape, np.float32)
            if index in (2, 5):
                units = shape[0] // 4
                bias[units : 2 * units] = 1.0
            weights.append(bias)
    return tuple(weights)


def _orthogonal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    rows, cols = shape
    q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
    q *= np.sign(np.diag(r))
    return (q.T if rows < cols else q).astype(np.float32)


def _gate_constants(units: int) -> tuple[np.ndarray, np.ndarray]:
    """Per gate column (i, f, g, o): sigmoid(z) = 0.5 * tanh(0.5 * z) + 0.5 and g = tanh(z),
    so one tanh gives all four gates: gate = tanh(z * half) * half + offset."""
    half = np.full(4 * units, 0.5, np.float32)
    half[2 * units : 3 * units] = 1.0
    return half, np.float32(1.0) - half


def _forward(x: np.ndarray, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray) -> tuple:
    """The whole output sequence and, per step, what the backward pass needs."""
    batch, steps, _ = x.shape
    units = recurrent.shape[0]
    half, offset = _gate_constants(units)
    slope_of = half * half  # d gate / dz = (1 - tanh^2) * half^2: 0.25 for sigmoids, 1 for g
    h = np.zeros((batch, units), np.float32)
    c = np.zeros((batch, units), np.float32)
    projected = x @ kernel + bias
    hs = np.empty((batch, steps, units), np.float32)
    saved = []
    for t in range(steps):
        squashed = np.tanh((projected[:, t] + h @ recurrent) * half)
        gates = squashed * half + offset
        before = c
        c = gates[:, units : 2 * units] * c + gates[:, :units] * gates[:, 2 * units : 3 * units]
        tanh_c = np.tanh(c)
        h = gates[:, 3 * units :] * tanh_c
        hs[:, t] = h
        slope = (1.0 - np.square(squashed)) * slope_of
        saved.append((gates, slope, before, tanh_c))
    return hs, saved


def _backward(
    x: np.ndarray, hs: np.ndarray, saved: list, kernel: np.ndarray, recurrent: np.ndarray, d_hs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of the loss for (inputs, kernel, recurrent kernel, bias), given `d_hs`, its
    gradient for each step's output."""
    batch, steps, _ = x.shape
    units = recurrent.shape[0]
    dz = np.empty((batch, steps, 4 * units), np.float32)
    upstream = np.empty((batch, 4 * units), np.float32)
    dh = np.zeros((batch, units), np.float32)
    dc = np.zeros((batch, units), np.float32)
    for t in reversed(range(steps)):
        gates, slope, before, tanh_c = saved[t]
        dh = dh + d_hs[:, t]
        dc = dc + dh * gates[:, 3 * units :] * (1.0 - np.square(tanh_c))
        upstream[:, :units] = dc * gates[:, 2 * units : 3 * units]
        upstream[:, units : 2 * units] = dc * before
        upstream[:, 2 * units : 3 * units] = dc * gates[:, :units]
        upstream[:, 3 * units :] = dh * tanh_c
        np.multiply(upstream, slope, out=dz[:, t])
        dc = dc * gates[:, units : 2 * units]
        dh = dz[:, t] @ recurrent.T
    flat = dz.reshape(batch * steps, 4 * units)
    previous = np.concatenate([np.zeros((batch, 1, units), np.float32), hs[:, :-1]], axis=1)
    return (
        dz @ kernel.T,
        x.reshape(batch * steps, -1).T @ flat,
        previous.reshape(batch * steps, units).T @ flat,
        flat.sum(axis=0),
    )


def loss_and_gradients(weights: Weights, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
    """The batch's mean loss (squared error, or for two outputs the Gaussian negative
    log-likelihood of job.forecast.model.lstm) and its gradient for each weight, in `weights` order.
    `x`: float32 (batch, window, inputs); `y`: float32 (batch,)."""
    k1, r1, b1, k2, r2, b2, d1, e1, d2, e2 = weights
    h1, saved1 = _forward(x, k1, r1, b1)
    h2, saved2 = _forward(h1, k2, r2, b2)
    last = h2[:, -1]
    dense = last @ d1 + e1
    out = dense @ d2 + e2
    n = np.float32(len(y))
    d_out = np.empty_like(out)
    if out.shape[1] == 1:
        error = out[:, 0] - y
        loss = float(np.mean(np.square(error)))
        d_out[:, 0] = 2.0 * error / n
    else:
        low, high = LOG_VARIANCE
        log_var = np.clip(out[:, 1], low, high)
        precision, error = np.exp(-log_var), out[:, 0] - y
        loss = float(np.mean(0.5 * (log_var + np.square(error) * precision)))
        d_out[:, 0] = error * precision / n
        inside = (out[:, 1] >= low) & (out[:, 1] <= high)  # the clip passes no gradient outside
        d_out[:, 1] = np.where(inside, 0.5 * (1.0 - np.square(error) * precision) / n, 0.0)
    d_dense = d_out @ d2.T
    d_h2 = np.zeros_like(h2)
    d_h2[:, -1] = d_dense @ d1.T
    d_h1, gk2, gr2, gb2 = _backward(h1, h2, saved2, k2, r2, d_h2)
    _, gk1, gr1, gb1 = _backward(x, h1, saved1, k1, r1, d_h1)
    dense_grads = [last.T @ d_dense, d_dense.sum(axis=0), dense.T @ d_out, d_out.sum(axis=0)]
    return loss, [gk1, gr1, gb1, gk2, gr2, gb2, *dense_grads]


class Adam:
    """Keras' Adam from fresh moments on a copy of `weights`, all held in one flat array (its
    update then takes a few numpy calls, not a few per weight)."""

    def __init__(self, weights: Weights, learning_rate: float) -> None:
        self.learning_rate, self.iterations = learning_rate, 0
        self.flat = np.concatenate([np.ravel(w) for w in weights]).astype(np.float32)
        ends = np.cumsum([np.size(w) for w in weights])
        self.views = tuple(
            self.flat[end - np.size(w) : end].reshape(np.shape(w))
            for end, w in zip(ends, weights, strict=True)
        )
        self.m, self.v = np.zeros_like(self.flat), np.zeros_like(self.flat)

    def weights(self) -> Weights:
        """A copy of the current weights: they keep their values while training goes on."""
        return tuple(w.copy() for w in self.views)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One mini-batch; returns its loss before the update."""
        _process_settings()
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run: its caller refuses it
            loss, grads = loss_and_gradients(self.views, x, y)
            g = np.concatenate([np.ravel(grad) for grad in grads])
            self.iterations += 1
            t = self.iterations
            alpha = np.float32(self.learning_rate * np.sqrt(1.0 - BETA_2**t) / (1.0 - BETA_1**t))
            self.m += (g - self.m) * np.float32(1.0 - BETA_1)
            self.v += (np.square(g) - self.v) * np.float32(1.0 - BETA_2)
            self.flat -= self.m * alpha / (np.sqrt(self.v) + np.float32(EPSILON))
        return loss


@cache
def _process_settings() -> None:
    """For the rest of the process: BLAS on one thread, and glibc's malloc keeping freed
    memory for reuse instead of handing it back to the system after every step (a step
    frees and reallocates a few megabytes; faulting them in again doubles its time)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc: its allocator's own ways stand
        return
    mallopt(M_TRIM_THRESHOLD, 32 << 20)
    mallopt(M_MMAP_THRESHOLD, 32 << 20)
