"""One as-of session as every model sees it: the bars up to it, the track of matured
forecasts, the scale all intervals share that evening, and the network's fit.

A model (job.forecast.entries) turns a `Session` into its `Forecast`; the intervals come
from here for every model alike (job.forecast.intervals), so a model brings only its point
forecast and, if it has them, earlier scores of its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from job.forecast import intervals
from job.forecast.model.core import Fit
from job.forecast.model.features import OHLCV
from job.forecast.models import LEVELS, PRIMARY, REFERENCE, Forecast, bounds
from job.forecast.scores import dm_pvalue, rmse, rmse_ratio

#: The guard's live test: the network's own forecasts over the last year (at least LIVE_MIN
#: matured sessions) must beat naive's, one-sided Diebold-Mariano p below LIVE_P (tested every
#: night, hence stricter than 5%), before the LSTM forecast leaves the last close.
LIVE_MIN, LIVE_P = 60, 0.01


@dataclass(frozen=True)
class Recent:
    """The ticker's latest forecasts, oldest first: what skill, the guard and the intervals
    learn from. `values[model][column]`: one array per stored numeric column (NaN: none)."""

    targets: np.ndarray = field(default_factory=lambda: np.array([], "datetime64[D]"))
    as_of: np.ndarray = field(default_factory=lambda: np.array([], "datetime64[D]"))
    values: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)

    def add(self, target: np.datetime64, as_of: np.datetime64, made: Mapping[str, Forecast]) -> Recent:
        keep = intervals.WINDOW
        return Recent(
            np.append(self.targets, target)[-keep:],
            np.append(self.as_of, as_of)[-keep:],
            {
                model: {name: np.append(self.column(model, name), value)[-keep:]
                        for name, value in made[model].values().items()}
                for model in made
            },
        )  # fmt: skip

    def column(self, model: str, name: str) -> np.ndarray:
        """One model's stored column (none yet: an empty one, before the first forecast)."""
        if model not in self.values and not len(self.targets):
            return np.empty(0)
        return self.values[model][name]


@dataclass
class Session:
    """What a model's forecast as of one session may read. `scale`: the `scale`,
    `network_scale` and `scale_source` columns every forecast of the session carries;
    `network`: the network's own next close (the last close where it was not plausible);
    `made`: the forecasts of the models before this one, the reference's first."""

    bars: OHLCV
    track: Track
    sigma: np.ndarray  # per stored session, the scale of the chosen source
    scale: Mapping[str, float | str]
    fit: Fit
    network: float
    plausible: bool
    guard: bool
    made: dict[str, Forecast] = field(default_factory=dict)

    @property
    def last_close(self) -> float:
        return float(self.bars.close[-1])

    def forecast(self, model: str, point: float, past: np.ndarray, **extra: float) -> Forecast:
        """`model`'s forecast of `point`, with its intervals at every level from its `past`
        scores and its own record of misses (NaN where none can be made yet)."""
        sigma, made = float(self.scale["scale"]), {}
        for level in LEVELS:
            interval = intervals.interval(point, sigma, past, self.track.misses(model, level), level / 100)
            made.update(zip(bounds(level), interval or (math.nan, math.nan), strict=True))
        return Forecast(point, **made, **self.scale, **extra)  # type: ignore[arg-type]


class Track:
    """A ticker's recent forecasts whose target close is known as of one session: what
    skill, the guard, the choice of scale and every model's intervals learn from."""

    def __init__(self, recent: Recent, dates: np.ndarray, closes: np.ndarray) -> None:
        at = np.searchsorted(dates, recent.targets)
        known = (at < len(dates)) & (dates[np.minimum(at, len(dates) - 1)] == recent.targets)
        self.recent, self.closes, self.dates = recent, closes, dates
        self.rows, self.actual = np.flatnonzero(known), closes[at[known]]
        self.as_of_index = np.searchsorted(dates, recent.as_of[known])

    def column(self, model: str, name: str) -> np.ndarray:
        """A stored column of the matured forecasts, oldest first."""
        return self.recent.column(model, name)[self.rows]

    def skill(self, window: int) -> float | None:
        """RMSE_lstm / RMSE_naive over the last `window` matured forecasts; None until a full window."""
        if len(self.rows) < window:
            return None
        actual = self.actual[-window:]
        ratio = rmse_ratio(
            rmse(self.column(PRIMARY, "predicted_close")[-window:], actual),
            rmse(self.column(REFERENCE, "predicted_close")[-window:], actual),
        )
        return None if math.isnan(ratio) else ratio

    def network_beats_naive(self) -> bool:
        """Whether the network's own recent forecasts beat naive's with a Diebold-Mariano
        p-value below LIVE_P: live, out-of-sample evidence of skill."""
        network = self.column(PRIMARY, "network_close")
        known = np.isfinite(network)
        if known.sum() < LIVE_MIN:
            return False
        naive, actual = self.column(REFERENCE, "predicted_close")[known], self.actual[known]
        p = dm_pvalue(network[known] - actual, naive - actual)
        return p is not None and p < LIVE_P and not self.applied_lost()

    def applied_lost(self) -> bool:
        """Whether the LSTM forecasts stored since it last left the naive one (its current run
        of moves) erred more, in squares, than naive's: then it goes back to naive."""
        lstm, naive = self.column(PRIMARY, "predicted_close"), self.column(REFERENCE, "predicted_close")
        moved = lstm != naive
        start = len(moved) - int(np.argmin(moved[::-1])) if not moved.all() else 0
        if start == len(moved):
            return False
        actual = self.actual[start:]
        return bool(np.square(lstm[start:] - actual).sum() > np.square(naive[start:] - actual).sum())

    def scale_source(self, baseline: np.ndarray) -> str:
        """Today's source of scale: the network's once its stored scales have beaten the
        baseline's on this ticker's matured sessions (job.forecast.intervals.choose)."""
        realized = np.log(self.actual / self.closes[self.as_of_index])
        network = self.column(REFERENCE, "network_scale")
        return intervals.choose(realized, network, baseline[self.as_of_index])

    def scales(self, baseline: np.ndarray, source: str) -> np.ndarray:
        """sigma_j of `source` per session: the baseline's, or where the network's stored
        scale exists (recent forecasts, matured or not), the network's."""
        if source == "baseline":
            return baseline
        network = self.recent.column(REFERENCE, "network_scale")
        at = np.searchsorted(self.dates, self.recent.as_of)
        out = baseline.copy()
        known = np.isfinite(network) & (at < len(self.dates))
        out[at[known]] = network[known]
        return out

    def scores(self, model: str, sigma: np.ndarray) -> np.ndarray:
        """A model's past interval scores: its matured forecasts' errors in units of `sigma`."""
        return intervals.scores(self.column(model, "predicted_close"), self.actual, sigma[self.as_of_index])

    def naive_scores(self, sigma: np.ndarray) -> np.ndarray:
        """Naive's past scores need no stored forecast: yesterday's close is always known."""
        j = np.arange(max(0, len(self.closes) - 1 - intervals.WINDOW), len(self.closes) - 1)
        return intervals.scores(self.closes[j], self.closes[j + 1], sigma[j])

    def misses(self, model: str, level: int) -> np.ndarray:
        """1 where a matured interval of this model and level missed its close, 0 where it held."""
        lower, upper = (self.column(model, name) for name in bounds(level))
        stored = np.isfinite(lower) & np.isfinite(upper)
        outside = (self.actual < lower) | (self.actual > upper)
        return outside[stored].astype(float)
