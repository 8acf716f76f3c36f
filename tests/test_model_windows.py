"""Windowing and scaling: what the network may see, and that nothing after the as-of point leaks."""

import numpy as np
import pytest

from job.forecast.model import windows


def _walk(n: int, seed: int = 0) -> np.ndarray:
    return 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.02, n)))


def test_supervised_pairs_are_consecutive_values() -> None:
    x, y = windows.supervised(np.arange(8.0), 3)
    assert x.tolist()[0] == [0, 1, 2] and y[0] == 3
    assert x.tolist()[-1] == [4, 5, 6] and y[-1] == 7
    assert len(y) == 5


def test_scaling_stats_of_a_training_span_ignore_everything_after_it() -> None:
    closes = _walk(300)
    table = windows.series(closes, "default")
    span = windows.training_span(200, 10)
    tampered = table.copy()
    tampered[span:] *= 10
    assert windows.fit_standard(table[:span]) == windows.fit_standard(tampered[:span])
    assert windows.fit_standard(table[:span]) != windows.fit_standard(tampered)
    # The training windows read exactly table[:span]: inputs, and targets (its return column).
    x, y = windows.supervised(table, 10)
    rows = np.concatenate([x[:200].reshape(-1, table.shape[1]), table[10:span]])
    assert np.array_equal(np.unique(rows, axis=0), np.unique(table[:span], axis=0))
    assert np.array_equal(y[:200], table[10:span, 0])


def test_minmax_maps_the_training_range_to_unit_interval() -> None:
    scaling = windows.fit_minmax(np.array([2.0, 4.0, 3.0]))
    assert scaling.apply(np.array([2.0, 4.0])).tolist() == [0.0, 1.0]
    assert scaling.invert(np.array([0.5]))[0] == 3.0


@pytest.mark.parametrize("preset", ["default", "seed"])
def test_forecast_inputs_read_nothing_after_the_as_of_close(preset: windows.Preset) -> None:
    closes = _walk(100)
    as_of = np.array([40, 60, 70])
    tampered = closes.copy()
    tampered[71:] *= 10
    assert np.array_equal(
        windows.forecast_inputs(closes, as_of, 5, preset), windows.forecast_inputs(tampered, as_of, 5, preset)
    )
    changed = closes.copy()
    changed[70] *= 2  # the as-of close itself is an input
    assert not np.array_equal(
        windows.forecast_inputs(closes, as_of, 5, preset)[2],
        windows.forecast_inputs(changed, as_of, 5, preset)[2],
    )


def test_forecast_inputs_match_the_training_windows() -> None:
    closes = _walk(80)
    x, _ = windows.supervised(windows.series(closes, "default"), 5)
    # Training window i forecasts the return into close i + 5 + CONTEXT, as of the close before.
    first = windows.min_closes(5, "default") - 1
    assert np.allclose(windows.forecast_inputs(closes, np.arange(first, 78), 5, "default"), x[: 78 - first])


def test_bad_closes_are_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        windows.check_closes(np.array([1.0, -2.0]))
    with pytest.raises(ValueError, match="1-D"):
        windows.check_closes(np.ones((2, 2)))
    with pytest.raises(ValueError, match="as_of_index"):
        windows.forecast_inputs(_walk(20), np.array([3]), 5, "default")
