"""Bars that a data error at the source explains better than the market.

Each bar can be valid on its own (`job.ingest.validate`) and the series still be wrong: Yahoo
serves weeks of a London stock in pounds instead of pence (closes /100), or the days
before a split it has not applied yet (closes x5, volumes /5). Stored, such a step becomes
one enormous log return that the next training learns from. The rules, decided on real
broken series and on 27 clean ones (README, "Flagged tickers"):

- a close-to-close step of x8 or more either way: no listed share moves that far in one
  session, while unit errors (x100) and unapplied splits or level shifts (x5 .. x50) do;
- a step near a whole split ratio (x2 .. x7, give or take one session's move) that the
  volume mirrors (a split not applied multiplies the price and divides the volume by the
  same ratio, where a real jump trades *more*);
- an Adj Close more than 1.5x Close or below 1/1000 of it (dividends only ever lower it,
  and never by that much).

A step between two bars already stored with the same ratio is not new, nor is a stored bar's
own Adj Close ratio: history Yahoo re-based (a split applied) keeps its ratios, and what
someone accepted stays accepted. The rules depend on the bars compared only, never on how
many came in one download, so a night and a catch-up judge a bar alike.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from job.errors import Refused
from job.ingest.sources.base import VALUE_COLUMNS, Bars

#: |log step| from which a step is an error whatever the volume says (x8 or /8).
UNIT_STEP = math.log(8.0)
#: |log step| from which a step may be an unapplied split (x1.8 .. below x8).
SPLIT_STEP = math.log(1.8)
#: How far (log) a split-like step may be from the whole ratio: one session's own move.
SPLIT_SLACK = 0.15
#: Only closes at most this far apart make a step (a long weekend, the new year); across a
#: gap in the data prices may have moved any distance.
MAX_GAP = dt.timedelta(days=10)
#: How far (log) the volume's move may be from the price's mirror image.
VOLUME_TOLERANCE = 0.7
#: Adj Close / Close outside this range is wrong.
ADJ_RATIO = (1e-3, 1.5)
#: Stored ratios this close (relative) count as the same step.
SAME_STEP = 1e-3

_CLOSE, _ADJ, _VOLUME = (VALUE_COLUMNS.index(c) for c in ("close", "adj_close", "volume"))


@dataclass(frozen=True)
class Anomaly:
    date: dt.date
    what: str

    def __str__(self) -> str:
        return f"{self.date} {self.what}"


#: What a flag says after its dates, by what was found.
UNIT_OR_SPLIT = " (a unit or split error at the source?); nothing stored, see README 'Flagged tickers'"


class Flagged(Refused):
    """A batch with anomalies; `span` runs from the first anomaly to the batch's last date."""

    def __init__(
        self,
        ticker: str,
        anomalies: Sequence[Anomaly],
        origin: str | None = None,
        span: tuple[dt.date, dt.date] | None = None,
        advice: str = UNIT_OR_SPLIT,
    ) -> None:
        super().__init__(ticker, "flagged", [str(a) for a in anomalies], origin, span, advice)


def _factor(ratio: float) -> str:
    return f"x{ratio:.3g}" if ratio >= 1 else f"/{1 / ratio:.3g}"


def find_anomalies(
    bars: Bars,
    stored: Mapping[dt.date, Sequence[float]] | None = None,
    accepted: Collection[dt.date] = (),
) -> list[Anomaly]:
    """The anomalies of a validated batch, by date. `stored`: the ticker's stored bars over
    the batch's dates, whose steps are not new; `accepted`: dates a person has confirmed."""
    stored = stored or {}
    dates, close, volume = bars.dates, bars.values[:, _CLOSE], bars.values[:, _VOLUME]
    found: list[Anomaly] = []
    with np.errstate(divide="ignore", invalid="ignore"):
        steps = np.diff(np.log(close))
        volume_steps = np.diff(np.log(volume))
    for i in np.flatnonzero(np.abs(steps) >= SPLIT_STEP):
        before, day, step = dates[i], dates[i + 1], float(steps[i])
        if day - before > MAX_GAP or day in accepted or _already_stored(stored, before, day, step):
            continue
        size = abs(step)
        mirrored = bool(np.isfinite(volume_steps[i])) and abs(step + volume_steps[i]) <= VOLUME_TOLERANCE
        near_ratio = abs(size - math.log(round(math.exp(size)))) <= SPLIT_SLACK
        if size >= UNIT_STEP or (near_ratio and mirrored):
            found.append(Anomaly(day, f"close {_factor(math.exp(step))}"))
    ratio = bars.values[:, _ADJ] / close
    for i in np.flatnonzero((ratio < ADJ_RATIO[0]) | (ratio > ADJ_RATIO[1])):
        old = stored.get(dates[i])
        if dates[i] in accepted or (old is not None and _same(old[_ADJ] / old[_CLOSE], ratio[i])):
            continue
        found.append(Anomaly(dates[i], f"adj_close {ratio[i]:.3g}x close"))
    return sorted(found, key=lambda a: a.date)


def _already_stored(
    stored: Mapping[dt.date, Sequence[float]], before: dt.date, day: dt.date, step: float
) -> bool:
    if before not in stored or day not in stored:
        return False
    return _same(stored[day][_CLOSE] / stored[before][_CLOSE], math.exp(step))


def _same(old: float, new: float) -> bool:
    return old > 0 and new > 0 and abs(math.log(new / old)) <= SAME_STEP
