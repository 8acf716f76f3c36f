"""Whether a history the source changed is one exact re-basing of what is stored.

A split or a change of units makes the source rewrite every past bar by one factor (a 3:1
split divides each earlier price by 3). Such a re-basing is applied to every stored number
in price units, so that the tables equal a clean load of the new history. Stored closes
that changed by *differing* factors are something else: a correction of a few sessions, a
partial fix, or another ticker's prices under this one's name. No factor maps the old
history onto that one, so it is refused (flagged with its dates) and nothing is touched,
until the source serves what is stored again or a person accepts the dates as corrections
(`nightcast ingest --accept DATE`); an accepted session's forecasts then follow its own
close, each by its own ratio.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from job.ingest.anomalies import Anomaly, Flagged
from job.ingest.sources.base import VALUE_COLUMNS, Bars

#: Relative difference that counts as a change, and how far a session's ratio may lie from
#: the factor and still agree with it: far below any split, dividend or correction worth
#: the name (>= ~0.1 %), far above the float noise of re-fetching or re-basing the same bar.
TOLERANCE = 1e-4

DISAGREE = (
    " (stored closes changed by differing factors, so no one factor re-bases the history: a "
    "correction, a partial fix or another ticker's prices?); nothing stored: fix the source, or "
    "store those dates as corrections with `nightcast ingest --accept DATE`, see README 'Revisions'"
)

_CLOSE = VALUE_COLUMNS.index("close")
_PRICES = [i for i, c in enumerate(VALUE_COLUMNS) if c != "volume"]

Stored = Mapping[dt.date, Sequence[float]]


@dataclass(frozen=True)
class Change:
    """How the served history maps onto the stored one."""

    factor: float  # new / old, for every stored session but the corrections (1.0: closes unchanged)
    corrections: dict[dt.date, float]  # accepted sessions and their own new / old close
    changed: list[dt.date]  # sessions whose stored prices change, oldest first
    unserved: list[dt.date]  # stored sessions the source no longer serves (kept, in the new units)

    @property
    def kind(self) -> str:
        return "correction" if self.corrections else "rebase"


#: What the caller has a re-based history carry, in the transaction that writes it: every
#: stored number in price units follows the new prices (the persist stage's, handed in by
#: the cycle, so this stage knows nothing of forecasts). Returns the forecasts rescaled.
Follow = Callable[[sa.Connection, str, Change], int]


def differs(new: np.ndarray, old: np.ndarray, tolerance: float = TOLERANCE) -> np.ndarray:
    """Relative difference above `tolerance`; a stored value that is not finite (written
    before validation refused such values) always differs, so a good download repairs it."""
    with np.errstate(invalid="ignore", over="ignore"):
        return ~(np.abs(new - old) <= tolerance * np.maximum(np.abs(old), 1e-12))


def measure(
    ticker: str,
    served: Bars,
    stored: Stored,
    accept: Collection[dt.date],
    *,
    origin: str | None,
    span: tuple[dt.date, dt.date],
) -> Change:
    """The one factor from the stored history to `served`, or `Flagged` naming the sessions
    that disagree with it (those in `accept` become corrections). `span`: the dates the flag
    covers, cleared once a download over them passes."""
    common = [day for day in served.dates if day in stored]
    at = {day: i for i, day in enumerate(served.dates)}
    new = served.values[[at[day] for day in common]].reshape(len(common), len(VALUE_COLUMNS))
    old = np.array([stored[day] for day in common], dtype=np.float64).reshape(len(common), len(VALUE_COLUMNS))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = new[:, _CLOSE] / old[:, _CLOSE]
    usable = ratios[np.isfinite(ratios) & (ratios > 0)]
    factor = float(np.median(usable)) if len(usable) else 1.0
    if abs(factor - 1.0) <= TOLERANCE:
        factor = 1.0
    with np.errstate(invalid="ignore"):
        agree = np.abs(ratios / factor - 1.0) <= TOLERANCE
    # A stored close that is no price at all (written before validation refused such) is a
    # broken row, which the download repairs; it says nothing of the units.
    broken = ~np.isfinite(old[:, _CLOSE]) | (old[:, _CLOSE] <= 0)
    corrections = {
        day: float(r)
        for day, r, ok, bad in zip(common, ratios, agree, broken, strict=True)
        if not (ok or bad)
    }
    refused = [day for day in corrections if day not in accept]
    if refused:
        anomalies = [Anomaly(day, f"close {_ratio(corrections[day] / factor)}") for day in refused]
        raise Flagged(ticker, anomalies, origin, span, advice=DISAGREE)
    changed = {
        day for day, c in zip(common, differs(new[:, _PRICES], old[:, _PRICES]).any(axis=1), strict=True) if c
    }
    unserved = sorted(set(stored) - set(served.dates))
    if factor != 1.0:
        changed.update(unserved)
    return Change(factor, corrections, sorted(changed | set(corrections)), unserved)


def _ratio(ratio: float) -> str:
    return f"x{ratio:.6g}" if ratio >= 1 else f"/{1 / ratio:.6g}"
