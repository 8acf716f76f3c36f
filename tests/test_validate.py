"""Validation: every rule reports ticker, date and rule; OHLC quirks are repaired, not dropped."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from job.ingest.sources import SampleSource
from job.ingest.validate import ValidationError, validate
from job.support.calendar import get_sessions

XNYS = get_sessions("XNYS")
D1, D2, D3 = dt.date(2020, 7, 29), dt.date(2020, 7, 30), dt.date(2020, 7, 31)


def bars(**changes: list[object]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "date": [D1, D2, D3],
            "open": [10.0, 11.0, 12.0],
            "high": [11.0, 12.0, 13.0],
            "low": [9.0, 10.0, 11.0],
            "close": [10.5, 11.5, 12.5],
            "adj_close": [10.5, 11.5, 12.5],
            "volume": [100.0, 200.0, 300.0],
        }
    )
    for column, values in changes.items():
        frame[column] = pd.Series(values, dtype=object if column == "date" else "float64")
    return frame


def test_the_real_series_is_clean() -> None:
    frame = SampleSource().fetch("TSLA", dt.date(2010, 1, 1), dt.date(2020, 12, 31))
    checked = validate(frame, "TSLA", XNYS)
    assert checked.warnings == [] and len(checked.bars) == 2541


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"date": [D1, D2, D2]}, "X 2020-07-30: duplicate date (2 rows)"),
        ({"date": [D1, "2020-31-07", D3]}, "X row 2: unparseable date ('2020-31-07')"),
        ({"date": [D1, D2, dt.date(2020, 8, 1)]}, "X 2020-08-01: not an exchange session (XNYS is closed)"),
        ({"date": [D1, dt.date(2020, 7, 3), D3]}, "X 2020-07-03: not an exchange session (XNYS is closed)"),
        ({"close": [10.5, -1.0, 12.5]}, "X 2020-07-30: non-positive price (close=-1)"),
        ({"close": [10.5, 0.0, 12.5]}, "X 2020-07-30: non-positive price (close=0)"),
        ({"open": [10.0, 11.0, -12.0]}, "X 2020-07-31: non-positive price (open=-12)"),
        ({"close": [10.5, np.nan, 12.5]}, "X 2020-07-30: missing value (close)"),
        ({"volume": [100.0, np.nan, 300.0]}, "X 2020-07-30: missing value (volume)"),
        ({"volume": [100.0, -5.0, 300.0]}, "X 2020-07-30: negative volume (volume=-5)"),
        ({"volume": [100.0, 1e30, 300.0]}, "X 2020-07-30: volume out of range (volume=1e+30, above 1e+15)"),
        (
            {"volume": [100.0, 99999999999999999999.0, 300.0]},
            "X 2020-07-30: volume out of range (volume=1e+20, above 1e+15)",
        ),
        (
            {"volume": [100.0, 9223372036854775808.0, 300.0]},
            "X 2020-07-30: volume out of range (volume=9.22337e+18, above 1e+15)",
        ),
        ({"volume": [100.0, np.inf, 300.0]}, "X 2020-07-30: not a finite number (volume=inf)"),
        ({"close": [10.5, np.inf, 12.5]}, "X 2020-07-30: not a finite number (close=inf)"),
        ({"adj_close": [10.5, -np.inf, 12.5]}, "X 2020-07-30: not a finite number (adj_close=-inf)"),
        ({"close": [10.5, 1e308, 12.5]}, "X 2020-07-30: price out of range (close=1e+308, above 1e+09)"),
        ({"high": [11.0, 2e9, 13.0]}, "X 2020-07-30: price out of range (high=2e+09, above 1e+09)"),
    ],
)
def test_structural_problems_reject_the_batch_naming_ticker_date_and_rule(
    changes: dict[str, list[object]], expected: str
) -> None:
    with pytest.raises(ValidationError) as info:
        validate(bars(**changes), "X", XNYS, origin="x.csv")
    assert expected in [str(p) for p in info.value.problems]
    message = str(info.value)
    assert message.startswith("X: x.csv: rejected ") and expected.removeprefix("X ") in message
    assert info.value.ticker == "X"


def test_missing_columns_reject() -> None:
    with pytest.raises(ValidationError, match=r"X: rejected -: missing column \(adj_close, volume\)"):
        validate(bars().drop(columns=["adj_close", "volume"]), "X", XNYS)


def test_many_problems_stay_one_line() -> None:
    with pytest.raises(ValidationError) as info:
        validate(bars(close=[-1.0, -2.0, -3.0], volume=[-1.0, -1.0, -1.0]), "X", XNYS)
    assert len(info.value.problems) == 6
    assert "and 3 more" in str(info.value) and "\n" not in str(info.value)


def test_ohlc_inconsistencies_are_repaired_and_reported() -> None:
    frame = bars(high=[11.0, 11.2, 13.0], low=[9.0, 10.0, 12.1])
    checked = validate(frame, "X", XNYS)
    assert checked.warnings == [
        "X 2020-07-30: high below open/close (high 11.2 raised to 11.5)",
        "X 2020-07-31: low above open/close (low 12.1 lowered to 12)",
    ]
    assert checked.bars.column("high").tolist() == [11.0, 11.5, 13.0]
    assert checked.bars.column("low").tolist() == [9.0, 10.0, 12.0]
    assert checked.bars.column("close").tolist() == [10.5, 11.5, 12.5], "the close is never touched"
