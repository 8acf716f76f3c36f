"""Prices from Yahoo-format CSV files: one file, or a directory of `TICKER.csv` files.

The format is what Yahoo's "Download" button writes: `Date,Open,High,Low,Close,Adj Close,
Volume`. Files without `Adj Close` are accepted (adj_close = close), because many other
tools write that shape. A file that cannot be read as such a table, or a cell that is not a
date or a number, is a `TickerError` naming the file (and the line); values that are
numbers but wrong (missing, negative, out of range) are left to validation, which reports
them with their date.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from job.errors import TickerError, clip, quote
from job.ingest.sources.base import YAHOO_COLUMNS, finish
from job.ingest.tickers import is_ticker
from job.ingest.validate import NOT_A_NUMBER, UNPARSEABLE_DATE, Problem, ValidationError

REQUIRED = ("Date", "Open", "High", "Low", "Close", "Volume")


def _parse_date(raw: str) -> dt.date | None:
    """An ISO date, or an ISO timestamp whose date part is the session; None if neither."""
    text = raw.strip()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(text).date()
    except ValueError:
        return None


def read_yahoo_csv(path: Path, ticker: str) -> pd.DataFrame:
    """Read one Yahoo-format CSV into the normalized columns (all rows, dates unfiltered).

    Cells that are not a date or a number are refused here, where their file line is known
    ("line 2515"); empty and `null` cells become NaN for validation to report with their date.
    """
    try:
        # Blank lines are kept (and dropped below) so that row i is file line i + 2.
        raw = pd.read_csv(
            path, dtype=str, keep_default_na=False, skipinitialspace=True, skip_blank_lines=False
        )
    except FileNotFoundError:
        raise TickerError(ticker, f"no CSV file at {path}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TickerError(ticker, f"{path}: malformed CSV ({clip(reason)})") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    raw = raw.fillna("")  # a row with too few cells: the missing ones are empty
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise TickerError(
            ticker,
            f"{path}: malformed CSV, missing column(s) {', '.join(missing)} "
            "(expected Date,Open,High,Low,Close,Adj Close,Volume)",
        )
    if "Adj Close" not in raw.columns:
        raw["Adj Close"] = raw["Close"]
    raw = raw.loc[:, list(YAHOO_COLUMNS)]
    raw = raw.loc[(raw != "").any(axis=1)]  # blank lines
    if raw.empty:
        raise TickerError(ticker, f"{path}: holds no price rows, only a header")
    problems: list[Problem] = []
    dates = [_parse_date(text) for text in raw["Date"]]
    for line, text, day in zip(raw.index + 2, raw["Date"], dates, strict=True):
        if day is None:
            problems.append(Problem(ticker, f"line {line}", UNPARSEABLE_DATE, quote(text)))
    frame = pd.DataFrame({"date": dates}, index=raw.index)
    for column, name in YAHOO_COLUMNS.items():
        if name == "date":
            continue
        # Yahoo writes "null" for a missing value.
        text = raw[column].str.strip().replace({"null": ""})
        frame[name] = pd.to_numeric(text.replace({"": None}), errors="coerce")
        for line in raw.index[frame[name].isna() & (text != "")] + 2:
            problems.append(
                Problem(ticker, f"line {line}", NOT_A_NUMBER, f"{column} {quote(raw[column][line - 2])}")
            )
    if problems:
        problems.sort(key=lambda p: int(p.date.removeprefix("line ")))
        raise ValidationError(ticker, problems, str(path))
    return frame.reset_index(drop=True)


class CsvSource:
    """Yahoo-format CSV: `path` is one file (the series of the ticker ingested) or a
    directory holding `TICKER.csv` per ticker.

    A single file named for another ticker (AMD.csv given for IBM) is refused: storing it
    would file one company's prices under another's name, and a later correct download
    would look like a revision of them. `any_name` lifts that, for files whose name is no
    ticker at all."""

    name = "csv"

    def __init__(self, path: Path, *, any_name: bool = False) -> None:
        self.path = Path(path)
        self.any_name = any_name

    def file_for(self, ticker: str) -> Path:
        """The file that holds `ticker` (already normalized, so it cannot leave the directory)."""
        if not self.path.is_dir():
            named = self.path.stem  # written as a symbol (upper case): AMD.csv, not prices.csv
            if not self.any_name and named.upper() != ticker and named.isupper() and is_ticker(named):
                raise TickerError(
                    ticker, f"{self.path.name} is named for {named}, not {ticker}: name the file "
                    f"{ticker}.csv, or set NIGHTCAST_CSV_ANY_NAME=true if its name is no ticker",
                )  # fmt: skip
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
        table = read_yahoo_csv(path, ticker)
        frame = finish(table, start, end)
        frame.attrs["origin"] = str(path)
        # Rows past `end`: ingest names them when `end` is the last closed session.
        frame.attrs["after_end"] = sorted(d for d in table["date"] if isinstance(d, dt.date) and d > end)
        return frame
