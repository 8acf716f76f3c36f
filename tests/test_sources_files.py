"""csv and sample sources: Yahoo-format files, directories, missing Adj Close, malformed files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from job.errors import NightcastError, TickerError
from job.ingest.sources import FRAME_COLUMNS, CsvSource, PriceSource, SampleSource, make_source
from job.ingest.sources.base import finish
from job.ingest.validate import ValidationError

SAMPLE = Path(__file__).resolve().parents[1] / "job" / "data" / "TSLA.csv"
ALL = (dt.date(1990, 1, 1), dt.date(2030, 1, 1))
HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_sample_is_the_bundled_real_series() -> None:
    frame = SampleSource().fetch("TSLA", *ALL)
    assert list(frame.columns) == list(FRAME_COLUMNS)
    assert len(frame) == 2541
    assert frame["date"].iat[0] == dt.date(2010, 6, 29) and frame["date"].iat[-1] == dt.date(2020, 7, 31)
    assert frame["close"].iat[0] == pytest.approx(4.778)
    july = SampleSource().fetch("TSLA", dt.date(2020, 7, 1), dt.date(2020, 7, 31))
    assert len(july) == 22, "end is inclusive"


def test_sample_refuses_other_tickers_clearly() -> None:
    with pytest.raises(TickerError, match=r"^AAPL: the sample source only has TSLA"):
        SampleSource().fetch("AAPL", *ALL)


def test_one_csv_file(tmp_path: Path) -> None:
    path = write(tmp_path / "tsla.csv", SAMPLE.read_text())
    frame = CsvSource(path).fetch("TSLA", dt.date(2020, 7, 30), dt.date(2020, 7, 31))
    assert [d.isoformat() for d in frame["date"]] == ["2020-07-30", "2020-07-31"]
    assert frame.attrs["origin"] == str(path)


def test_a_directory_of_ticker_files(tmp_path: Path) -> None:
    write(tmp_path / "TSLA.csv", SAMPLE.read_text())
    write(tmp_path / "brk-b.csv", HEADER + "2020-07-31,1,2,0.5,1.5,1.5,100\n")
    source = CsvSource(tmp_path)
    assert len(source.fetch("TSLA", *ALL)) == 2541
    assert source.fetch("BRK-B", *ALL)["close"].tolist() == [1.5]
    with pytest.raises(TickerError, match=r"^MSFT: no file MSFT.csv in "):
        source.fetch("MSFT", *ALL)


def test_missing_adj_close_means_close(tmp_path: Path) -> None:
    path = write(tmp_path / "X.csv", "Date,Open,High,Low,Close,Volume\n2020-07-31,1,2,0.5,1.5,100\n")
    frame = CsvSource(path).fetch("X", *ALL)
    assert frame["adj_close"].tolist() == [1.5]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Date,Open,Close\n2020-07-31,1,2\n", "missing column(s) High, Low, Volume"),
        ("", "malformed CSV"),
        ('Date,Open\n"2020-07-31,1\n', "malformed CSV"),
    ],
)
def test_malformed_file_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "BAD.csv", text)
    with pytest.raises(TickerError) as info:
        CsvSource(tmp_path).fetch("BAD", *ALL)
    assert str(info.value).startswith(f"BAD: {path}")
    assert message in str(info.value)


def test_cells_that_are_no_date_or_number_are_named_by_file_line(tmp_path: Path) -> None:
    rows = [
        "2020-07-27,1,2,0.5,1.5,1.5,100",
        "",
        "31/07/2020,1,2,0.5,1.5,1.5,100",
        '2020-07-30,1,2,0.5,abc,1,"78,657,500"',
    ]
    path = write(tmp_path / "X.csv", HEADER + "\n".join(rows) + "\n")
    with pytest.raises(ValidationError) as info:
        CsvSource(path).fetch("X", *ALL)
    assert str(info.value) == (
        f"X: {path}: rejected line 4: unparseable date ('31/07/2020'); line 5: not a number (Close 'abc'); "
        "line 5: not a number (Volume '78,657,500')"
    )


def test_empty_and_null_cells_reach_validation_as_missing_values(tmp_path: Path) -> None:
    path = write(tmp_path / "X.csv", HEADER + "2020-07-30,1,2,0.5,null,1,5\n2020-07-31,1,2,0.5,1.5,1.5,\n")
    frame = CsvSource(path).fetch("X", *ALL)
    assert frame["date"].tolist() == [dt.date(2020, 7, 30), dt.date(2020, 7, 31)]
    assert frame["close"].isna().tolist() == [True, False]
    assert frame["volume"].isna().tolist() == [False, True]


def test_make_source() -> None:
    for name in ("yahoo", "sample"):
        source = make_source(name, None)
        assert isinstance(source, PriceSource) and source.name == name
    with pytest.raises(NightcastError, match="source csv needs a path"):
        make_source("csv", None)
    with pytest.raises(NightcastError, match="does not exist"):
        make_source("csv", Path("/nonexistent/prices.csv"))
    with pytest.raises(NightcastError, match="unknown price source 'ftp'"):
        make_source("ftp", None)


def test_finish_keeps_the_range_and_sorts_newest_first_files_stably() -> None:
    days = [dt.date(2020, 7, d) for d in (31, 30, 30, 29, 28)]  # newest first, one duplicate
    frame = pd.DataFrame({"date": days, **{c: [1.0, 2.0, 3.0, 4.0, 5.0] for c in FRAME_COLUMNS[1:]}})
    out = finish(frame, dt.date(2020, 7, 29), dt.date(2020, 7, 30))
    assert list(out.columns) == list(FRAME_COLUMNS)
    assert out["date"].tolist() == [dt.date(2020, 7, 29), dt.date(2020, 7, 30), dt.date(2020, 7, 30)]
    assert out["close"].tolist() == [4.0, 2.0, 3.0], "duplicates keep their file order for validation"
