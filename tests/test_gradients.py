"""The numpy training step against Keras itself: forward pass, loss, gradients and Adam."""

from __future__ import annotations

import numpy as np
import pytest

from job.forecast.model import gradients
from job.forecast.model.lstm import Spec
from job.forecast.model.network import build_model, load_keras

SPECS = [Spec(10, (50, 50), 25, 6, 2), Spec(4, (3, 5), 2, 1, 1)]


def _random(spec: Spec, seed: int) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    start = gradients.initial_weights(spec, seed)
    weights = tuple((w + rng.normal(0, 0.3, w.shape)).astype(np.float32) for w in start)
    x = rng.normal(size=(7, spec.window, spec.inputs)).astype(np.float32)
    return weights, x, rng.normal(size=7).astype(np.float32)


def _keras_loss(tf: object, spec: Spec, output: object, y: np.ndarray) -> object:
    if spec.outputs == 1:
        return tf.reduce_mean(tf.square(output[:, 0] - y))
    log_var = tf.clip_by_value(output[:, 1], -10.0, 10.0)
    return tf.reduce_mean(0.5 * (log_var + tf.square(y - output[:, 0]) * tf.exp(-log_var)))


@pytest.mark.slow  # imports TensorFlow
@pytest.mark.parametrize("spec", SPECS, ids=["distribution", "point"])
def test_loss_and_every_gradient_equal_keras_on_random_weights(spec: Spec) -> None:
    load_keras()
    import tensorflow as tf

    weights, x, y = _random(spec, 3)
    model = build_model(spec)
    model.set_weights(weights)
    with tf.GradientTape() as tape:
        expected_loss = _keras_loss(tf, spec, model(x), y)
    expected = tape.gradient(expected_loss, model.trainable_variables)
    loss, grads = gradients.loss_and_gradients(weights, x, y)
    assert loss == pytest.approx(float(expected_loss), rel=1e-6)
    assert len(grads) == len(expected)
    for ours, theirs in zip(grads, expected, strict=True):
        theirs = theirs.numpy()
        assert ours.shape == theirs.shape and ours.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5 * np.abs(theirs).max())


def test_a_log_variance_held_at_its_bound_passes_no_gradient() -> None:
    spec = Spec(4, (3, 5), 2, 1, 2)
    weights, x, y = _random(spec, 5)
    weights = (*weights[:-1], np.array([0.0, 50.0], np.float32))  # log variance far above 10
    _, grads = gradients.loss_and_gradients(weights, x, y)
    assert grads[-1][1] == 0.0 and grads[-1][0] != 0.0


@pytest.mark.slow  # imports TensorFlow
def test_adam_steps_equal_keras_adam() -> None:
    keras = load_keras()
    spec = SPECS[1]
    weights, x, y = _random(spec, 7)
    model = build_model(spec)
    model.set_weights(weights)
    optimizer = keras.optimizers.Adam(learning_rate=0.01)
    ours = gradients.Adam(weights, 0.01)
    for _ in range(3):
        _, grads = gradients.loss_and_gradients(tuple(w.numpy() for w in model.trainable_variables), x, y)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        ours.step(x, y)
    for a, b in zip(ours.weights(), model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_initial_weights_are_keras_defaults_in_kind() -> None:
    spec = SPECS[0]
    k1, r1, b1, k2, r2, b2, d1, e1, d2, e2 = gradients.initial_weights(spec, 1)
    units = spec.lstm_units[0]
    np.testing.assert_array_equal(b1, np.r_[np.zeros(units), np.ones(units), np.zeros(2 * units)])
    for recurrent in (r1, r2):  # orthogonal rows
        np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(len(recurrent)), atol=1e-5)
    for kernel in (k1, k2, d1, d2):  # Glorot uniform
        limit = np.sqrt(6 / sum(kernel.shape))
        assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit
    assert not (e1.any() or e2.any() or b2[:units].any())
    again = gradients.initial_weights(spec, 1)
    assert all(np.array_equal(a, b) for a, b in zip(again, gradients.initial_weights(spec, 1), strict=True))
