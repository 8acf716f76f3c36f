"""The Keras network: one compiled copy per architecture, trained in place; inference in numpy.

Why it looks like this: the nightly backfill trains ~25 times and fine-tunes ~500 times in one
process. Building a Keras model and tracing its training step costs ~0.7-1 s, `model.predict`
~100 ms a call, while one training step of this small LSTM costs ~1.3-2 ms. So:

- `_Net` (cached per `Spec` for the life of the process) owns one Keras model, Adam state
  and a training step traced once with a free batch dimension, called as a concrete function
  so that nothing retraces or re-dispatches. A retrain builds nothing: it assigns freshly
  seeded initial weights and zeroes the Adam state; an update chained on the previous one
  only zeroes the Adam state. A lock guards each cached network; concurrent training in
  threads is serialized, not parallel.
- Each LSTM layer is one fused `BlockLSTMV2` op (forward and gradient): ~1.7 ms per
  training step instead of ~6.5 ms for the same equations as separate ops, with no
  compile step (XLA fuses as well but costs ~2 s per process).
- Trained weights leave TensorFlow as numpy arrays; forecasting runs the same LSTM equations
  in numpy (`predict`), well under a millisecond per forecast and no shared state, so a
  `Forecaster` is a plain immutable value. A test checks `predict` against the Keras model.
- The `seed` preset is the tutorial, faithfully: a fresh model, the stock LSTM layer and
  `model.fit(batch_size=1, epochs=3)`; it is slow by design and exists for comparison.

TensorFlow is imported lazily here only, with its C++ logging silenced and oneDNN custom ops
off (they print a banner at import and may reorder float sums between runs).
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import tempfile
import threading
import warnings
import zipfile
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from threadpoolctl import ThreadpoolController

Weights = tuple[np.ndarray, ...]


@dataclass(frozen=True)
class Spec:
    """Architecture: LSTM(units[0], return_sequences) -> LSTM(units[1]) -> Dense(dense) -> Dense(1)."""

    window: int
    lstm_units: tuple[int, int]
    dense_units: int


@dataclass(frozen=True)
class TrainResult:
    weights: Weights
    epochs: int
    train_loss: float
    val_loss: float | None


def warm_up() -> threading.Thread:
    """Start importing TensorFlow in the background (~3 s) while the caller does other work
    (downloads, queries); the first training then finds it imported or nearly so. Join the
    thread before exiting: an import cut short by interpreter shutdown is not safe."""
    thread = threading.Thread(target=_keras, name="tensorflow-import")
    thread.start()
    return thread


@cache
def _keras() -> Any:
    """Import Keras/TensorFlow once, quietly, with one thread per op pool.

    Ops of this small network are too small to gain from intra-op threads; on a shared
    2-core machine TensorFlow's spinning pools and OpenBLAS' fought each other (a numpy
    forecast right after a training epoch took 10x longer). Skipped when something else
    already started the TensorFlow runtime.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    # The import creates millions of objects that live as long as the process; collecting
    # garbage while it runs (about 1 s of full collections) finds none, so it is paused,
    # and the result is then frozen out of every later collection.
    collecting = gc.isenabled()
    gc.disable()
    try:
        import keras
        import tensorflow as tf
    finally:
        if collecting:
            gc.enable()
    gc.freeze()

    with contextlib.suppress(RuntimeError):
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(2)
    return keras


@cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def _one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """numpy work here is small matrices: one BLAS thread is faster and bit-reproducible."""
    return _blas().limit(limits=1, user_api="blas")


def set_seed(seed: int) -> None:
    """Seed Python, numpy and TensorFlow (`keras.utils.set_random_seed`)."""
    _keras().utils.set_random_seed(seed)


def build_model(spec: Spec, *, unroll: bool) -> Any:
    keras = _keras()
    return keras.Sequential(
        [
            keras.Input((spec.window, 1)),
            keras.layers.LSTM(spec.lstm_units[0], return_sequences=True, unroll=unroll),
            keras.layers.LSTM(spec.lstm_units[1], unroll=unroll),
            keras.layers.Dense(spec.dense_units),
            keras.layers.Dense(1),
        ]
    )


class _Net:
    """One model, Adam state and a traced training step, reused by every training of a Spec.

    The step runs the Keras LSTM maths over the model's own variables with TensorFlow's fused
    `BlockLSTMV2` kernel (the same gates as `predict`; a test checks both against the Keras
    model) and applies Adam with the fused `ResourceApplyAdam` kernel: far fewer ops per step
    and a faster first trace than calling the layers and `keras.optimizers.Adam`.
    """

    def __init__(self, spec: Spec) -> None:
        _keras()
        import tensorflow as tf

        self.lock = threading.Lock()
        self.model = build_model(spec, unroll=True)
        variables = [v.value for v in self.model.trainable_variables]  # tf.Variable behind each
        self.slots = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables for _ in (0, 1)]
        self.iterations = tf.Variable(0.0, trainable=False)
        self.learning_rate = tf.Variable(1e-3, trainable=False)
        slots, iterations, learning_rate = self.slots, self.iterations, self.learning_rate

        def forward(x: Any) -> Any:
            k1, r1, b1, k2, r2, b2, d1, e1, d2, e2 = variables
            sequence = tf.transpose(x)[:, :, None]  # (time, batch, 1), as BlockLSTMV2 wants
            hidden = _tf_lstm(tf, sequence, k1, r1, b1)
            last = _tf_lstm(tf, hidden, k2, r2, b2)[-1]
            return ((last @ d1 + e1) @ d2 + e2)[:, 0]

        @tf.function(
            input_signature=[tf.TensorSpec([None, spec.window]), tf.TensorSpec([None])], autograph=False
        )
        def step(x: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(forward(x) - y))
            grads = tape.gradient(loss, variables)
            iterations.assign_add(1.0)
            beta1_power, beta2_power = tf.pow(_BETA1, iterations), tf.pow(_BETA2, iterations)
            for i, (variable, grad) in enumerate(zip(variables, grads, strict=True)):
                tf.raw_ops.ResourceApplyAdam(
                    var=variable.handle,
                    m=slots[2 * i].handle,
                    v=slots[2 * i + 1].handle,
                    beta1_power=beta1_power,
                    beta2_power=beta2_power,
                    lr=learning_rate,
                    beta1=_BETA1,
                    beta2=_BETA2,
                    epsilon=_EPSILON,
                    grad=grad,
                )
            return loss

        @tf.function(autograph=False)
        def fresh_optimizer(rate: Any) -> None:
            for slot in slots:
                slot.assign(tf.zeros_like(slot))
            iterations.assign(0.0)
            learning_rate.assign(rate)

        @tf.function(autograph=False)
        def restart(weights: list[Any], rate: Any) -> None:
            for variable, value in zip(variables, weights, strict=True):
                variable.assign(value)
            fresh_optimizer(rate)

        @tf.function(autograph=False)
        def read() -> list[Any]:
            return [tf.identity(v) for v in variables]

        # Concrete functions, traced once here: calling one skips tf.function's per-call
        # dispatch (argument binding, trace-cache lookup), about a fifth of a training step.
        rate = tf.TensorSpec([], tf.float32)
        self.step = step.get_concrete_function()
        self.fresh_optimizer = fresh_optimizer.get_concrete_function(rate)
        self.restart = restart.get_concrete_function(
            [tf.TensorSpec(v.shape, v.dtype) for v in variables], rate
        )
        self.read = read.get_concrete_function()
        # The weights last read out while nothing has trained since: the variables hold them.
        self.holds: Weights | None = None

    def epoch(self, x: np.ndarray, y: np.ndarray, order: np.ndarray, batch_size: int) -> float:
        """One pass of shuffled mini-batches; the mean batch loss (Keras' convention).

        The batch loop stays in Python: a traced step costs the same per call as a graph loop
        and traces in half the time, which matters for the first training of a process.
        """
        import tensorflow as tf

        self.holds = None
        losses = [
            float(self.step(tf.constant(x[rows]), tf.constant(y[rows])))
            for rows in np.split(order, range(batch_size, len(order), batch_size))
        ]
        return float(np.mean(losses))

    def reset(self, weights: Weights, learning_rate: float) -> None:
        """Start from `weights` with a fresh optimizer (zero moments and step count).

        One traced call: assigning the two dozen variables one eager op at a time cost more
        than a nightly update's training steps. A backfill's next update starts from the
        weights the previous one read out, still in the variables: then only the optimizer
        restarts, which skips converting and copying every weight (most of the cost).
        """
        import tensorflow as tf

        rate = tf.constant(learning_rate, tf.float32)
        if weights is self.holds:
            self.fresh_optimizer(rate)
        else:
            self.restart([tf.constant(w, tf.float32) for w in weights], rate)

    def weights(self) -> Weights:
        """The current weights as numpy arrays, read in one traced call."""
        self.holds = tuple(t.numpy() for t in self.read())
        return self.holds


_BETA1, _BETA2, _EPSILON = 0.9, 0.999, 1e-7  # keras.optimizers.Adam's defaults


def _tf_lstm(tf: Any, sequence: Any, kernel: Any, recurrent: Any, bias: Any) -> Any:
    """A Keras LSTM layer (gates i, f, c, o; sigmoid/tanh) over a (time, batch, features)
    sequence, as one fused `BlockLSTMV2` kernel whose gradient is one more: about 4x faster
    per training step on CPU than the same equations as separate ops."""
    batch, units = tf.shape(sequence)[1], tf.shape(recurrent)[0]
    zeros, no_peephole = tf.zeros([batch, units]), tf.zeros([units])
    outputs = tf.raw_ops.BlockLSTMV2(
        seq_len_max=tf.cast(tf.shape(sequence)[0], tf.int64),
        x=sequence,
        cs_prev=zeros,
        h_prev=zeros,
        w=tf.concat([kernel, recurrent], axis=0),
        wci=no_peephole,
        wcf=no_peephole,
        wco=no_peephole,
        b=bias,
        use_peephole=False,
    )
    return outputs[6]  # h, the output at every step


@cache
def _net(spec: Spec) -> _Net:
    return _Net(spec)


def initial_weights(spec: Spec, seed: int) -> Weights:
    """Keras' default initializers, drawn from a seeded numpy generator.

    glorot_uniform kernels, orthogonal recurrent kernels, zero biases with the LSTM forget-gate
    bias at 1 (`unit_forget_bias`). Drawing them here, rather than rebuilding layers, is what
    lets a retrain reuse the traced network.
    """
    with _one_blas_thread():
        return _initial_weights(spec, np.random.default_rng(seed))


def _initial_weights(spec: Spec, rng: np.random.Generator) -> Weights:
    def glorot(fan_in: int, fan_out: int) -> np.ndarray:
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, (fan_in, fan_out))

    def orthogonal(units: int) -> np.ndarray:
        q, r = np.linalg.qr(rng.normal(size=(4 * units, units)))
        return (q * np.sign(np.diag(r))).T

    def lstm_bias(units: int) -> np.ndarray:
        bias = np.zeros(4 * units)
        bias[units : 2 * units] = 1.0
        return bias

    u1, u2 = spec.lstm_units
    arrays = [
        glorot(1, 4 * u1),
        orthogonal(u1),
        lstm_bias(u1),
        glorot(u1, 4 * u2),
        orthogonal(u2),
        lstm_bias(u2),
        glorot(u2, spec.dense_units),
        np.zeros(spec.dense_units),
        glorot(spec.dense_units, 1),
        np.zeros(1),
    ]
    return tuple(a.astype(np.float32) for a in arrays)


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
    """Shuffled mini-batch Adam/MSE from `weights`.

    With a validation set: early stopping after `patience` epochs without improvement and the
    best epoch's weights restored. Without one: exactly `max_epochs` epochs (fine-tuning).
    """
    net = _net(spec)
    rng = np.random.default_rng(seed)
    x32, y32 = np.asarray(x, np.float32), np.asarray(y, np.float32)

    def run_epoch() -> float:
        return net.epoch(x32, y32, rng.permutation(len(y32)), batch_size)

    with net.lock:
        net.reset(weights, learning_rate)
        if x_val is None or y_val is None or len(y_val) == 0:
            loss = float("nan")
            for _ in range(max_epochs):
                loss = run_epoch()
            return TrainResult(net.weights(), max_epochs, loss, None)
        xv, yv = np.asarray(x_val, np.float32), np.asarray(y_val, np.float32)
        best: TrainResult | None = None  # validation loss via `predict`: the forward of record
        best_val, stale, epoch = float("inf"), 0, 0
        for epoch in range(1, max_epochs + 1):
            loss = run_epoch()
            current = net.weights()
            val_loss = float(np.mean(np.square(predict(current, xv) - yv)))
            if best is None or val_loss < best_val:
                best, best_val, stale = TrainResult(current, epoch, loss, val_loss), val_loss, 0
            else:
                stale += 1
                if stale >= patience:
                    break
        assert best is not None
        return replace(best, epochs=epoch)


def train_tutorial(spec: Spec, x: np.ndarray, y: np.ndarray, *, seed: int, epochs: int = 3) -> TrainResult:
    """The tutorial's training, as written: new model, `fit(batch_size=1)`, nothing reused."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    model = build_model(spec, unroll=False)
    model.compile(optimizer="adam", loss="mean_squared_error")
    history = model.fit(
        x[:, :, None].astype(np.float32), y.astype(np.float32), batch_size=1, epochs=epochs, verbose=0
    )
    return TrainResult(tuple(model.get_weights()), epochs, float(history.history["loss"][-1]), None)


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
    with _one_blas_thread():
        hidden = _lstm(np.asarray(x, np.float32)[:, :, None], k1, r1, b1)
        last = _lstm(hidden, k2, r2, b2)[:, -1]
        return ((last @ d1 + e1) @ d2 + e2)[:, 0]


@dataclass(frozen=True)
class _KerasLayout:
    """What Keras writes for one architecture, and where each weight's bytes sit in it."""

    config: bytes
    metadata: bytes
    weights_h5: bytes  # Keras' own HDF5 file, used as a template
    slots: tuple[tuple[int, int], ...]  # (byte offset in weights_h5, index into the weights)


@cache
def _keras_layout(spec: Spec) -> _KerasLayout:
    """Save the architecture once with every weight array filled with its own index.

    Reading that file back tells which HDF5 dataset holds which weight and at which byte
    offset its (contiguous, uncompressed float32) data is stored, in whatever layout this
    Keras version uses, so `to_keras_bytes` can write new weights without Keras or HDF5.
    A model of its own, so the training network's weights are never touched.
    """
    model = build_model(spec, unroll=True)
    with tempfile.TemporaryDirectory() as tmp:
        model.set_weights([np.full(w.shape, i, np.float32) for i, w in enumerate(model.get_weights())])
        path = Path(tmp) / "model.keras"
        with warnings.catch_warnings():  # Keras 3.15 + numpy 2: harmless `__array__(copy=...)` notice
            warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
            model.save(path)
        with zipfile.ZipFile(path) as archive:
            config, metadata = archive.read("config.json"), archive.read("metadata.json")
            weights_h5 = archive.read("model.weights.h5")
    slots: list[tuple[int, int]] = []

    def record(name: str, node: Any) -> None:
        if isinstance(node, h5py.Dataset):
            offset = node.id.get_offset()
            if offset is None or node.dtype != np.dtype("<f4") or node.chunks or node.compression:
                raise RuntimeError(f"Keras stored {name} in a layout nightcast cannot write")
            slots.append((offset, int(node[()].flat[0])))

    with h5py.File(io.BytesIO(weights_h5), "r") as h5:
        h5.visititems(record)
    return _KerasLayout(config, metadata, weights_h5, tuple(slots))


def to_keras_bytes(spec: Spec, weights: Weights) -> bytes:
    """The network in Keras' `.keras` format (loadable with `keras.saving.load_model`).

    Keras' own file for this architecture with the new weights' bytes written in place:
    `model.save` costs ~11 ms and a backfill saves a version every session; this takes well
    under a millisecond. A test loads the bytes with `keras.saving.load_model`.
    """
    layout = _keras_layout(spec)
    h5 = bytearray(layout.weights_h5)
    for offset, index in layout.slots:
        data = np.ascontiguousarray(weights[index], "<f4").tobytes()
        h5[offset : offset + len(data)] = data
    archive_bytes = io.BytesIO()
    with zipfile.ZipFile(archive_bytes, "w") as archive:
        archive.writestr("metadata.json", layout.metadata)
        archive.writestr("config.json", layout.config)
        archive.writestr("model.weights.h5", bytes(h5))
    return archive_bytes.getvalue()


def from_keras_bytes(spec: Spec, data: bytes) -> Weights:
    """Weights from `.keras` bytes, loaded into the cached model of `spec` (no layer rebuilding)."""
    net = _net(spec)
    with net.lock, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        path.write_bytes(data)
        net.model.load_weights(path)
        return net.weights()
