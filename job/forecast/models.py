"""What a forecast is, by name: the models, the interval levels and the stored columns.

Every stage speaks these names: the compute stage returns a `Forecast` per model, persist
stores its fields under the same names in `predictions`, plan reads them back into the
state of a replay, evaluate and the report read them by name. A model is an entry of
job.forecast.entries; a new column is this module plus a migration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

#: The model every other one is measured against (skill, Diebold-Mariano, hit rate): the
#: last known close. The product's own forecast, the network behind its guard: the one
#: whose intervals the report draws and whose skill the retrain policy watches. The list of
#: models itself is job.forecast.entries'.
REFERENCE, PRIMARY = "naive", "lstm"
#: Why a stored LSTM forecast equals the naive one, said wherever that shows.
GUARDED = "the guard keeps the LSTM at the last close until the network's own forecasts beat naive's"
#: Where an interval's scale comes from: the network's own forecast of the next return's
#: spread, or the transparent baseline (a HAR regression on the day's range, job.forecast.intervals).
SCALE_SOURCES = ("network", "baseline")
#: Interval levels, in percent, as the columns name them (`lower_80` .. `upper_95`).
LEVELS = (80, 95)


def bounds(level: int) -> tuple[str, str]:
    """The columns of the interval at `level` percent."""
    return f"lower_{level}", f"upper_{level}"


@dataclass(frozen=True)
class Forecast:
    """One model's forecast of the next close, with its intervals; NaN where there is none
    (no interval before volatility can be measured; `network_close` on naive's rows)."""

    predicted_close: float
    lower_80: float = math.nan
    upper_80: float = math.nan
    lower_95: float = math.nan
    upper_95: float = math.nan
    network_close: float = math.nan  # what the network alone said, before the guard
    scale: float = math.nan  # the next log return's standard deviation the intervals used
    network_scale: float = math.nan  # the network's own forecast of it
    scale_source: str | None = None  # whose `scale` is: SCALE_SOURCES

    def row(self) -> dict[str, float | str | None]:
        """The `predictions` columns it fills (NULL for NaN)."""
        numbers = {name: None if math.isnan(value) else value for name, value in self.values().items()}
        return numbers | {"scale_source": self.scale_source}

    def values(self) -> dict[str, float]:
        """Its numeric columns: what a replay carries from session to session."""
        return {name: getattr(self, name) for name in NUMERIC}


#: The stored columns of a forecast, in `predictions`; NUMERIC, those that are numbers.
COLUMNS = tuple(field.name for field in fields(Forecast))
NUMERIC = tuple(name for name in COLUMNS if name != "scale_source")
