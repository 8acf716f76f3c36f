"""Which sessions a cycle replays: the nightly run, a backfill and a training are one cycle
(job.pipeline) over different selections."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Selection:
    """Which sessions a cycle replays and what it does with them; `name` is its
    `job_runs.kind`. Build one with `nightly`, `backfill` or `train`."""

    name: Literal["run", "backfill", "train"]
    as_of: dt.date | None = None  # None: each ticker's last closed session
    start: dt.date | None = None  # replay every session from here (a backfill)
    ingest: bool = True  # download first
    retrain: bool = False  # one from-scratch training per ticker, whatever is stored
    forecasts: bool = True  # store forecasts and metrics, not only versions

    @classmethod
    def nightly(cls, as_of: dt.date | None = None) -> Selection:
        """Every stored session since the last forecast (a ticker never forecast: the last)."""
        return cls("run", as_of)

    @classmethod
    def backfill(cls, start: dt.date, as_of: dt.date | None = None) -> Selection:
        """Every session whose forecast targets `start` or later, walk-forward."""
        return cls("backfill", as_of, start)

    @classmethod
    def train(cls, as_of: dt.date | None = None) -> Selection:
        """One training from scratch on the stored prices, no download, no forecast."""
        return cls("train", as_of, ingest=False, retrain=True, forecasts=False)
