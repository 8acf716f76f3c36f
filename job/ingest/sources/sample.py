"""The bundled real series: TSLA daily bars 2010-06-29..2020-07-31 (2,541 NYSE sessions).

It ships inside the package so a fresh install can run the whole nightly cycle, the tests
and the tutorial comparison without a network or a data file of one's own.
"""

from __future__ import annotations

import datetime as dt
from importlib import resources

import pandas as pd

from job.errors import TickerError
from job.ingest.sources.base import finish
from job.ingest.sources.csvfile import read_yahoo_csv

SAMPLE_TICKERS = ("TSLA",)


class SampleSource:
    """Serves the bundled TSLA series; any other ticker is a clear error, not an empty frame."""

    name = "sample"

    def fetch(self, ticker: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        if ticker not in SAMPLE_TICKERS:
            raise TickerError(
                ticker,
                f"the sample source only has {', '.join(SAMPLE_TICKERS)} "
                "(use --source yahoo or --source csv for other tickers)",
            )
        resource = resources.files("job").joinpath("data", f"{ticker}.csv")
        with resources.as_file(resource) as path:
            frame = finish(read_yahoo_csv(path, ticker), start, end)
        frame.attrs["origin"] = f"bundled sample {ticker}.csv"
        return frame
