"""The Diebold-Mariano p-value is scipy's one-sample t test, whatever the loss differences."""

from __future__ import annotations

import numpy as np
import pytest

from job.forecast.scores import dm_pvalue, mean_below_zero_pvalue


@pytest.mark.parametrize("n", [3, 4, 20, 60, 250, 1000])
@pytest.mark.parametrize("shift", [-0.5, 0.0, 0.3])
def test_the_dm_p_value_is_the_one_sided_one_sample_t_test(n: int, shift: float) -> None:
    from scipy.stats import ttest_1samp  # heavy: imported by the worker that runs this alone

    rng = np.random.default_rng(n)
    for _ in range(20):
        d = rng.standard_t(3, n) * rng.uniform(1e-4, 1e3) + shift
        expected = ttest_1samp(d, 0.0, alternative="less").pvalue
        assert mean_below_zero_pvalue(d) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_nothing_to_test_is_none_not_a_number() -> None:
    assert mean_below_zero_pvalue(np.array([1.0, -1.0])) is None  # fewer than 3
    assert mean_below_zero_pvalue(np.full(10, 0.25)) is None  # constant: no variance
    errors = np.array([1.0, -2.0, 0.5, 3.0])
    assert dm_pvalue(errors, errors) is None  # identical squared errors throughout


def test_dm_compares_squared_errors() -> None:
    from scipy.stats import ttest_1samp

    rng = np.random.default_rng(1)
    good, bad = rng.normal(0, 1, 200), rng.normal(0, 2, 200)
    p = dm_pvalue(good, bad)
    assert p == pytest.approx(ttest_1samp(good**2 - bad**2, 0.0, alternative="less").pvalue, rel=1e-12)
    assert p < 0.01 and dm_pvalue(bad, good) > 0.99  # type: ignore[operator]
