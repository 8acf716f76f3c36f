"""What every price source returns, so ingest never cares where prices came from."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from job.db.schema import BAR_VALUES

#: The numeric columns, in the order of `Bars.values`: those of `prices`.
VALUE_COLUMNS = BAR_VALUES

#: The normalized frame every source returns, in this order, ascending by date.
FRAME_COLUMNS = ("date", *VALUE_COLUMNS)

#: Yahoo's column names (CSV header and yfinance frames) mapped to ours.
YAHOO_COLUMNS = {
    "Date": "date",
    "Open": "open",
    "High": "high",
    "Low": "low",
    "Close": "close",
    "Adj Close": "adj_close",
    "Volume": "volume",
}


@runtime_checkable
class PriceSource(Protocol):
    """A place daily bars come from.

    `fetch` returns the bars with start <= date <= end (END INCLUSIVE, unlike yfinance) as a
    frame with `FRAME_COLUMNS`: `date` holds `datetime.date`, prices are floats, volume numeric;
    ascending by date. It raises `TickerError` naming the ticker when it cannot. An empty
    frame means "no bar in that range", never "unknown ticker".
    """

    name: str

    def fetch(self, ticker: str, start: dt.date, end: dt.date) -> pd.DataFrame: ...


@dataclass(frozen=True)
class Bars:
    """A validated batch as plain arrays: what ingest compares and writes.

    The nightly append handles about one bar per ticker for hundreds of tickers; at that
    size each pandas indexing call (tens of microseconds) costs more than the bar itself,
    so once validated a batch leaves pandas. `dates` holds `datetime.date` ascending;
    `values` is float64 with one column per `VALUE_COLUMNS` entry.
    """

    dates: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.dates)

    def column(self, name: str) -> np.ndarray:
        return self.values[:, VALUE_COLUMNS.index(name)]

    def take(self, rows: np.ndarray | slice) -> Bars:
        """The bars at `rows` (a boolean mask, positions or a slice)."""
        return Bars(self.dates[rows], self.values[rows])

    def columns(self) -> dict[str, np.ndarray]:
        """Each value column by name: how the tables take bars (job.db.bars)."""
        return {name: self.values[:, i] for i, name in enumerate(VALUE_COLUMNS)}

    @classmethod
    def of(cls, dates: np.ndarray, columns: Mapping[str, np.ndarray]) -> Bars:
        """From dates and value columns by name, as the tables give them."""
        return cls(dates, np.column_stack([columns[name] for name in VALUE_COLUMNS]).reshape(len(dates), -1))


def empty_frame() -> pd.DataFrame:
    """The normalized frame with no rows (typed, so concatenation and validation behave)."""
    return pd.DataFrame(
        {
            "date": pd.Series([], dtype=object),
            **{c: pd.Series([], dtype="float64") for c in FRAME_COLUMNS[1:]},
        }
    )


def _sort_key(day: object) -> dt.date:
    return day if isinstance(day, dt.date) else dt.date.min


def finish(frame: pd.DataFrame, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Keep start <= date <= end, sort ascending and fix column order and dtypes.

    Prices and volume become float64: NaN marks a value that was missing or not a number,
    and validation reports it with its date. A date that could not be parsed stays as its
    raw text (sorted first) so validation can name it; the sort is stable, so duplicate
    dates stay visible too.
    """
    columns: dict[str, np.ndarray] = {"date": np.asarray(frame["date"].to_numpy(), dtype=object)}
    retyped = False
    for column in FRAME_COLUMNS[1:]:
        values = frame[column].to_numpy()
        if values.dtype != np.float64:  # text from a CSV, ints, pandas NA: NaN if not a number
            values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            retyped = True
        columns[column] = values
    dates = columns["date"]
    if set(map(type, dates)) <= {dt.date}:  # the usual case, at C speed; datetimes go below
        # numpy, not pandas, for the filter and the order check: a nightly batch is a dozen
        # rows, where each pandas call would cost more than the rows themselves.
        keep = ((dates >= start) & (dates <= end)).astype(bool)
        rows = np.flatnonzero(keep)
        kept = dates[rows]
        if not (kept[1:] >= kept[:-1]).all():
            rows = rows[np.argsort(kept, kind="stable")]
        elif len(rows) == len(dates) and not retyped and list(frame.columns) == list(FRAME_COLUMNS):
            return frame  # already in normal form (a cache or an in-memory source): as is
        return pd.DataFrame({c: v[rows] for c, v in columns.items()}, copy=False)
    keep = np.array([not isinstance(d, dt.date) or start <= d <= end for d in dates], dtype=bool)
    out = pd.DataFrame({c: v[keep] for c, v in columns.items()})
    return out.sort_values("date", kind="stable", key=lambda s: s.map(_sort_key)).reset_index(drop=True)
