"""Where prices come from: the `PriceSource` protocol and its yahoo, csv and sample sources."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from job.config import Settings
from job.errors import NightcastError, quote
from job.ingest.sources.base import FRAME_COLUMNS, PriceSource, empty_frame
from job.ingest.sources.csvfile import CsvSource
from job.ingest.sources.sample import SampleSource
from job.support.calendar import Sessions

SOURCE_NAMES = ("yahoo", "csv", "sample")


def make_source(
    name: str,
    csv_path: Path | None = None,
    *,
    calendars: Callable[[str], Sessions] | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    csv_any_name: bool = False,
) -> PriceSource:
    """The source a setting or `--source` names; `calendars`/`clock` only matter to yahoo,
    `csv_any_name` (a single file may be named for another ticker) to csv."""
    if name == "yahoo":
        from job.ingest.sources.yahoo import (
            YahooSource,  # yfinance takes about 0.5 s to import; csv runs skip it
        )

        return YahooSource(calendars, clock=clock)
    if name == "csv":
        if csv_path is None:
            raise NightcastError("source csv needs a path: pass --csv PATH or set NIGHTCAST_CSV_PATH")
        if not Path(csv_path).exists():
            raise NightcastError(f"--csv: {csv_path} does not exist")
        return CsvSource(Path(csv_path), any_name=csv_any_name)
    if name == "sample":
        return SampleSource()
    raise NightcastError(f"unknown price source {quote(name)} (use {', '.join(SOURCE_NAMES)})")


def source_for(settings: Settings, *, clock: Callable[[], dt.datetime] | None = None) -> PriceSource:
    """The configured source, on each ticker's exchange calendar."""
    path = settings.csv_path
    if settings.source == "csv" and path is not None and Path(path).is_file() and len(settings.tickers) > 1:
        raise NightcastError(
            f"--csv {path} is one file, which holds one ticker's prices, but {len(settings.tickers)} "
            f"tickers were given ({','.join(settings.tickers)}): pass a folder of TICKER.csv files"
        )
    return make_source(
        settings.source, settings.csv_path, calendars=settings.exchanges, clock=clock,
        csv_any_name=settings.csv_any_name,
    )  # fmt: skip


__all__ = [
    "FRAME_COLUMNS",
    "SOURCE_NAMES",
    "CsvSource",
    "PriceSource",
    "SampleSource",
    "empty_frame",
    "make_source",
    "source_for",
]
