"""Prices from Yahoo-format CSV files: one file, or a directory of `TICKER.csv` files.

The format is what Yahoo's "Download" button writes: `Date,Open,High,Low,Close,Adj Close,
Volume`. Files without `Adj Close` are accepted (adj_close = close), because many other
tools write that shape. A file that cannot be read as such a table is a `TickerError`
naming the file; bad values inside a readable file are left to validation, which reports
them with their date.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from job.errors import TickerError
from job.sources.base import YAHOO_COLUMNS, finish

REQUIRED = ("Date", "Open", "High", "Low", "Close", "Volume")


def _parse_date(raw: object) -> object:
    """ISO dates (or ISO timestamps, whose date part is the session) become `datetime.date`;
    anything else is kept raw so validation can name it."""
    text = str(raw).strip()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(text).date()
    except ValueError:
        return text


def read_yahoo_csv(path: Path, ticker: str) -> pd.DataFrame:
    """Read one Yahoo-format CSV into the normalized columns (all rows, dates unfiltered)."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError:
        raise TickerError(ticker, f"no CSV file at {path}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TickerError(ticker, f"{path}: malformed CSV ({reason})") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise TickerError(
            ticker,
            f"{path}: malformed CSV, missing column(s) {', '.join(missing)} "
            "(expected Date,Open,High,Low,Close,Adj Close,Volume)",
        )
    if "Adj Close" not in raw.columns:
        raw["Adj Close"] = raw["Close"]
    frame = raw.loc[:, list(YAHOO_COLUMNS)].rename(columns=YAHOO_COLUMNS)
    frame["date"] = [_parse_date(v) for v in frame["date"]]
    # Yahoo writes "null" for a missing value; validation reports the NaN with its date.
    return frame.replace({"null": None, "": None})


class CsvSource:
    """Yahoo-format CSV: `path` is one file (the series of whichever ticker is ingested)
    or a directory holding `TICKER.csv` per ticker."""

    name = "csv"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def file_for(self, ticker: str) -> Path:
        """The file that holds `ticker` (already normalized, so it cannot leave the directory)."""
        if not self.path.is_dir():
            return self.path
        exact = self.path / f"{ticker}.csv"
        if exact.exists():
            return exact
        for candidate in self.path.iterdir():  # tsla.csv is fine too
            if candidate.suffix.lower() == ".csv" and candidate.stem.upper() == ticker:
                return candidate
        raise TickerError(ticker, f"no file {ticker}.csv in {self.path}")

    def fetch(self, ticker: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        path = self.file_for(ticker)
        frame = finish(read_yahoo_csv(path, ticker), start, end)
        frame.attrs["origin"] = str(path)
        return frame
