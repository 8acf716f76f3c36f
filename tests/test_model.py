"""Training, fine-tuning and forecasting with tiny networks on synthetic random walks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from job.forecast.model import Fit, Forecaster, features, network, train, update, windows
from job.forecast.model.core import min_train_closes, shrink_factor
from job.forecast.params import ModelParams

TINY = ModelParams(
    window=5,
    lstm_units=(6, 5),
    dense_units=4,
    batch_size=32,
    max_epochs=4,
    patience=2,
    train_sessions=250,
    update_sessions=60,
    update_epochs=2,
)


def _walk(n: int, seed: int = 0) -> np.ndarray:
    return 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.02, n)))


@pytest.fixture(scope="module")
def closes() -> np.ndarray:
    return _walk(400)


@pytest.fixture(scope="module")
def fit(closes: np.ndarray) -> Fit:
    return train(closes, TINY)


def test_training_reports_what_it_did(fit: Fit) -> None:
    n_windows = TINY.train_sessions - windows.min_closes(TINY.window, "default")
    assert fit.n_samples == n_windows - round(n_windows * TINY.validation_fraction)
    assert 1 <= fit.epochs <= TINY.max_epochs
    assert np.isfinite(fit.train_loss) and fit.val_loss is not None
    assert fit.val_rmse is not None and fit.val_naive_rmse is not None
    assert 0.0 <= fit.forecaster.shrink <= 1.0


def test_the_guard_keeps_validation_error_at_or_below_naive(fit: Fit) -> None:
    assert fit.val_rmse is not None and fit.val_naive_rmse is not None
    assert fit.val_rmse <= fit.val_naive_rmse * 1.001


def test_shrink_factor_is_least_squares_clipped_to_unit_interval() -> None:
    p = np.array([1.0, -2.0, 0.5])
    assert shrink_factor(p, 0.3 * p) == pytest.approx(0.3)
    assert shrink_factor(p, -p) == 0.0
    assert shrink_factor(p, 5 * p) == 1.0
    assert shrink_factor(np.zeros(3), p) == 0.0


def test_shrink_factor_needs_evidence_of_skill() -> None:
    rng = np.random.default_rng(0)
    predicted = rng.normal(size=300)
    noise = rng.normal(size=300)
    assert shrink_factor(predicted, noise) == 0.0  # no relation: the naive forecast
    assert shrink_factor(predicted, 0.5 * predicted + noise) == pytest.approx(
        np.dot(predicted, 0.5 * predicted + noise) / np.dot(predicted, predicted)
    )


def test_same_seed_gives_the_same_forecast(closes: np.ndarray, fit: Fit) -> None:
    again = train(closes, TINY)
    assert again.forecaster.forecast(closes) == fit.forecaster.forecast(closes)
    assert all(
        np.array_equal(a, b) for a, b in zip(again.forecaster.weights, fit.forecaster.weights, strict=True)
    )
    assert again.val_loss == fit.val_loss and again.epochs == fit.epochs
    other = train(closes, TINY.model_copy(update={"seed": 7}))
    assert not np.array_equal(other.forecaster.weights[0], fit.forecaster.weights[0])


def test_retrain_uses_only_the_most_recent_train_sessions(closes: np.ndarray, fit: Fit) -> None:
    older = closes.copy()
    older[: -TINY.train_sessions] *= 3  # history before the training window
    assert train(older, TINY).forecaster.forecast(closes) == fit.forecaster.forecast(closes)


def test_scaling_comes_from_training_windows_not_the_validation_tail(closes: np.ndarray, fit: Fit) -> None:
    """Changing the validation tail changes early stopping, never the normalization statistics."""
    tail = closes.copy()
    tail[-40:] = tail[-41] * np.exp(np.cumsum(np.full(40, 0.05)))
    assert train(tail, TINY).forecaster.scaling == fit.forecaster.scaling
    returns = windows.series(closes[-TINY.train_sessions :], "default")
    assert fit.forecaster.scaling == windows.fit_standard(returns[: fit.n_samples + TINY.window])


def test_a_forecast_reads_only_closes_up_to_the_as_of_session(closes: np.ndarray, fit: Fit) -> None:
    as_of = np.arange(300, 399)
    tampered = closes.copy()
    tampered[-1] *= 10  # after the last as-of session (398)
    assert np.array_equal(
        fit.forecaster.forecast_many(closes, as_of), fit.forecaster.forecast_many(tampered, as_of)
    )


def test_forecast_many_equals_forecast_elementwise(closes: np.ndarray, fit: Fit) -> None:
    as_of = np.arange(windows.min_closes(TINY.window, "default") - 1, len(closes), 37)
    many = fit.forecaster.forecast_many(closes, as_of)
    one_by_one = [fit.forecaster.forecast(closes[: j + 1]) for j in as_of]
    np.testing.assert_allclose(many, one_by_one, rtol=1e-12)


def test_update_uses_a_fixed_number_of_recent_windows(fit: Fit) -> None:
    expected = TINY.update_sessions - TINY.window
    short, long = _walk(500, seed=1), _walk(2500, seed=2)
    assert update(fit.forecaster, short, TINY).n_samples == expected
    assert update(fit.forecaster, long, TINY).n_samples == expected
    # Only the recent closes matter: changing older history changes nothing.
    older = long.copy()
    older[: -TINY.update_sessions] *= 2
    assert update(fit.forecaster, older, TINY).forecaster.forecast(long) == pytest.approx(
        update(fit.forecaster, long, TINY).forecaster.forecast(long), rel=0, abs=0
    )


def test_a_training_depends_on_its_inputs_only(closes: np.ndarray, fit: Fit) -> None:
    """Nothing of one training (weights, Adam moments) may leak into the next, nor may
    training move weights already read out."""
    first = update(fit.forecaster, closes[:-1], TINY).forecaster
    snapshot = [w.copy() for w in first.weights]
    chained = update(first, closes, TINY).forecaster
    train(closes[:-5], TINY)  # the shared network now holds other weights and moments
    fresh = update(replace(first, weights=tuple(snapshot)), closes, TINY).forecaster
    for a, b in zip(chained.weights, fresh.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(first.weights, snapshot, strict=True):
        np.testing.assert_array_equal(a, b, err_msg="weights read out must not move with training")


def test_update_keeps_scaling_and_shrink_and_changes_weights(closes: np.ndarray, fit: Fit) -> None:
    updated = update(fit.forecaster, closes, TINY)
    assert updated.forecaster.scaling == fit.forecaster.scaling
    assert updated.forecaster.shrink == fit.forecaster.shrink
    assert updated.epochs == TINY.update_epochs and updated.val_loss is None
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(updated.forecaster.weights, fit.forecaster.weights, strict=True)
    )


def test_update_refuses_another_architecture(closes: np.ndarray, fit: Fit) -> None:
    with pytest.raises(ValueError, match="retrain"):
        update(fit.forecaster, closes, TINY.model_copy(update={"dense_units": 9}))


@pytest.mark.slow  # imports TensorFlow
def test_numpy_forward_matches_the_keras_model(tmp_path: Path, closes: np.ndarray, fit: Fit) -> None:
    import keras

    network.save_keras(fit.forecaster.spec, fit.forecaster.weights, tmp_path / "m.keras")
    model = keras.saving.load_model(tmp_path / "m.keras")
    x = fit.forecaster.scaling.apply(
        windows.forecast_inputs(closes, np.arange(40, 399), TINY.window, "default")
    )
    from job.forecast.model.lstm import predict

    assert x.shape[2] == len(features.NAMES)
    np.testing.assert_allclose(
        predict(fit.forecaster.weights, x), np.asarray(model(x.astype(np.float32))), atol=1e-5
    )


@pytest.mark.slow
def test_seed_preset_is_the_tutorial(closes: np.ndarray) -> None:
    params = ModelParams(preset="seed", lstm_units=(4, 4), dense_units=2, window=30)
    fit = train(closes[:120], params)
    assert fit.forecaster.spec.window == 10  # the tutorial's window, whatever `window` says
    assert fit.epochs == 3 and fit.n_samples == 110 and fit.val_loss is None
    assert fit.forecaster.scaling == windows.fit_minmax(closes[:120])
    assert np.isfinite(fit.forecaster.forecast(closes[:120]))
    updated = update(fit.forecaster, closes, params)
    assert updated.n_samples == params.update_sessions - 10


def test_too_little_data_is_a_clear_error_with_one_minimum() -> None:
    need = min_train_closes(TINY)
    for n in (30, need - 1):
        with pytest.raises(ValueError, match=rf"too few closes to train: {n} \(need at least {need} "):
            train(_walk(n), TINY)
    assert train(_walk(need), TINY).n_samples == 20  # the minimum is exactly enough


def test_forecaster_is_a_frozen_value(fit: Fit) -> None:
    assert isinstance(fit.forecaster, Forecaster)
    with pytest.raises(AttributeError):
        fit.forecaster.shrink = 0.5  # type: ignore[misc]
