"""The yahoo adapter on recorded frames of the exact shapes yfinance 1.x returns.

Frames with the exact shapes yfinance 1.7 returns, rebuilt from recorded values.

`tests/fixtures/yahoo_tsla_2020-07.csv` holds the values Yahoo served for TSLA in the last
sessions of July 2020 (the same numbers as the bundled series). The builders below turn
them into what yfinance hands back, following its code line by line:

- `Ticker.history(start, end, interval="1d", auto_adjust=False, actions=False)`
  (scrapers/history.py): single-level columns Open, High, Low, Close, Adj Close, Volume
  (Volume int64), index = local midnight in the exchange time zone
  (`tz_localize("America/New_York")`), named 'Date'. During a session Yahoo appends the
  live bar of today.
- `yf.download(t, ..., multi_level_index=True)` (multi.py): the per-ticker frames are
  concatenated with keys=[ticker], names=['Ticker', 'Price'], then (group_by='column')
  `swaplevel(0, 1)` and `sort_index(level=0, axis=1)`, so columns are a MultiIndex named
  ['Price', 'Ticker'] sorted by price name (Adj Close, Close, High, Low, Open, Volume).
  For daily bars `ignore_tz` defaults to True, so the index is tz-naive midnight.
  With multi_level_index=False the Ticker level is dropped and the column axis unnamed.
- A failed ticker inside download(): `utils.empty_df()` (0 rows, Date index) reindexed onto
  an empty DatetimeIndex, concatenated the same way: 0 rows, MultiIndex columns.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from yfinance.exceptions import YFPricesMissingError, YFRateLimitError, YFTzMissingError

from job.errors import TickerError
from job.ingest.sources import FRAME_COLUMNS
from job.ingest.sources.yahoo import DOWNLOAD_OPTIONS, YahooSource
from job.support.calendar import Calendars

RECORDED = Path(__file__).parent / "fixtures" / "yahoo_tsla_2020-07.csv"
EXCHANGE_TZ = "America/New_York"


def recorded(last: str | None = None) -> pd.DataFrame:
    frame = pd.read_csv(RECORDED)
    if last is not None:
        frame = frame[frame["Date"] <= last]
    return frame


def history_frame(values: pd.DataFrame) -> pd.DataFrame:
    """What `yf.Ticker(t).history(..., auto_adjust=False, actions=False)` returns."""
    index = pd.DatetimeIndex(pd.to_datetime(values["Date"])).tz_localize(EXCHANGE_TZ, ambiguous=True)
    index.name = "Date"
    frame = pd.DataFrame(
        {c: values[c].to_numpy(dtype="float64") for c in ("Open", "High", "Low", "Close", "Adj Close")},
        index=index,
    )
    frame["Volume"] = values["Volume"].to_numpy(dtype=np.int64)
    return frame


def empty_history() -> pd.DataFrame:
    """yfinance.utils.empty_df(): what history() returns when it logs instead of raising."""
    empty = pd.DataFrame(
        index=[],
        data={c: np.nan for c in ("Open", "High", "Low", "Close", "Adj Close", "Volume")},
    )
    empty.index.name = "Date"
    return empty


def download_frame(
    per_ticker: dict[str, pd.DataFrame], *, multi_level_index: bool = True, ignore_tz: bool = True
) -> pd.DataFrame:
    """What `yf.download(...)` builds from per-ticker history frames (multi.py)."""
    dfs = {}
    for ticker, df in per_ticker.items():
        df = df.copy()
        if ignore_tz and not df.empty:
            df.index = df.index.tz_localize(None)
        dfs[ticker] = df
    idx = None
    for df in dfs.values():
        if not df.empty:
            idx = df.index if idx is None else idx.union(df.index)
    if idx is None:
        idx = pd.DatetimeIndex([])
    dfs = {k: v.reindex(idx) for k, v in dfs.items()}
    data = pd.concat(dfs.values(), axis=1, sort=True, keys=dfs.keys(), names=["Ticker", "Price"])
    data.columns = data.columns.swaplevel(0, 1)
    data = data.sort_index(level=0, axis=1)
    if not multi_level_index and len(per_ticker) == 1:
        data = data.droplevel(1, axis=1).rename_axis(None, axis=1)
    return data


UTC = dt.UTC
AFTER_CLOSE = dt.datetime(2020, 7, 31, 22, 30, tzinfo=UTC)  # 18:30 New York, the nightly run
DURING_SESSION = dt.datetime(2020, 7, 31, 17, 0, tzinfo=UTC)  # 13:00 New York
JULY = (dt.date(2020, 7, 1), dt.date(2020, 7, 31))


class Replay:
    """A download function that answers with recorded frames or exceptions, in order."""

    def __init__(self, *answers: pd.DataFrame | BaseException) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, tickers: str, **kwargs: Any) -> pd.DataFrame:
        self.calls.append({"tickers": tickers, **kwargs})
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer


def source(download: Replay, now: dt.datetime = AFTER_CLOSE, attempts: int = 3) -> YahooSource:
    return YahooSource(
        Calendars(),
        download=download,
        clock=lambda: now,
        attempts=attempts,
        wait_initial=0.001,
        wait_max=0.002,
    )


def check_normalized(frame: pd.DataFrame, rows: int) -> None:
    assert list(frame.columns) == list(FRAME_COLUMNS)
    assert len(frame) == rows
    assert all(type(d) is dt.date for d in frame["date"])
    assert list(frame["date"]) == sorted(frame["date"])
    assert frame.loc[frame["date"] == dt.date(2020, 7, 31), "close"].item() == pytest.approx(286.152008)


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(download_frame({"TSLA": history_frame(recorded())}), id="download-multiindex"),
        pytest.param(
            download_frame({"TSLA": history_frame(recorded())}, multi_level_index=False),
            id="download-single-level",
        ),
        pytest.param(
            download_frame({"TSLA": history_frame(recorded())}, ignore_tz=False), id="download-tz-aware"
        ),
        pytest.param(history_frame(recorded()), id="history-tz-aware"),
    ],
)
def test_every_yfinance_shape_normalizes_to_the_same_frame(frame: pd.DataFrame) -> None:
    replay = Replay(frame)
    check_normalized(source(replay).fetch("TSLA", *JULY), rows=22)
    call = replay.calls[0]
    assert call["tickers"] == "TSLA"
    assert call["end"] == dt.date(2020, 8, 1), "yfinance's end is exclusive: one day past ours"
    assert call["auto_adjust"] is False and call["progress"] is False and call["threads"] is False
    assert {k: call[k] for k in DOWNLOAD_OPTIONS} == DOWNLOAD_OPTIONS


def test_the_recorded_shape_is_what_yfinance_returns() -> None:
    frame = download_frame({"TSLA": history_frame(recorded())})
    assert frame.columns.names == ["Price", "Ticker"]
    assert frame.index.name == "Date"
    aware = history_frame(recorded())
    assert str(aware.index.tz) == "America/New_York"


def test_the_session_date_is_the_exchange_local_date_not_the_utc_one() -> None:
    # Midnight in Tokyo is the previous day in UTC; the session is the local date.
    values = recorded().tail(1)
    index = pd.DatetimeIndex(["2020-07-31"]).tz_localize("Asia/Tokyo").rename("Date")
    frame = history_frame(values).set_axis(index)
    tokyo = YahooSource(
        Calendars("XTKS"), download=Replay(frame), clock=lambda: AFTER_CLOSE, wait_initial=0.001
    )
    got = tokyo.fetch("7203.T", dt.date(2020, 7, 31), dt.date(2020, 7, 31))
    assert list(got["date"]) == [dt.date(2020, 7, 31)]


def test_the_in_progress_bar_of_an_open_session_is_dropped() -> None:
    # During the session Yahoo appends today's live bar; it is not a close yet.
    live = download_frame({"TSLA": history_frame(recorded())})
    got = source(Replay(live), now=DURING_SESSION).fetch("TSLA", *JULY)
    assert got["date"].iat[-1] == dt.date(2020, 7, 30)
    assert len(got) == 21


def test_no_closed_session_in_range_is_an_empty_frame_without_asking_yahoo() -> None:
    replay = Replay(RuntimeError("must not be called"))
    weekend = source(replay).fetch("TSLA", dt.date(2020, 8, 1), dt.date(2020, 8, 2))
    assert weekend.empty and list(weekend.columns) == list(FRAME_COLUMNS)
    tonight = source(replay, now=DURING_SESSION).fetch("TSLA", dt.date(2020, 7, 31), dt.date(2020, 7, 31))
    assert tonight.empty
    assert replay.calls == []


def test_empty_for_a_session_yahoo_has_not_published_but_ticker_known_is_no_new_session() -> None:
    month = download_frame({"TSLA": history_frame(recorded(last="2020-07-30"))})
    replay = Replay(month)  # the night's bar missing; the weeks before it show the ticker
    got = source(replay).fetch("TSLA", dt.date(2020, 7, 31), dt.date(2020, 7, 31))
    assert got.empty
    assert len(replay.calls) == 1 and replay.calls[0]["start"] == dt.date(2020, 6, 1)


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(download_frame({"NOPE": empty_history()}), id="download-empty-frame"),
        pytest.param(YFTzMissingError("NOPE"), id="no-timezone"),
        pytest.param(YFPricesMissingError("NOPE", " (1d 2020-07-01 -> 2020-08-01)"), id="prices-missing"),
    ],
)
def test_unknown_or_delisted_ticker_is_a_clear_error(answer: pd.DataFrame | BaseException) -> None:
    night = Replay(answer)  # every request reaches two months back: nothing there is decisive
    with pytest.raises(
        TickerError, match=r"^NOPE: unknown or delisted ticker .* in 2020-06-01\.\.2020-07-31"
    ) as info:
        source(night).fetch("NOPE", dt.date(2020, 7, 31), dt.date(2020, 7, 31))
    assert info.value.ticker == "NOPE"
    assert len(night.calls) == 1


def test_rate_limits_and_network_errors_are_retried() -> None:
    good = download_frame({"TSLA": history_frame(recorded())})
    replay = Replay(YFRateLimitError(), ConnectionError("reset by peer"), good)
    check_normalized(source(replay).fetch("TSLA", *JULY), rows=22)
    assert len(replay.calls) == 3


def test_persistent_rate_limit_becomes_a_ticker_error_after_the_attempts() -> None:
    replay = Replay(YFRateLimitError())
    with pytest.raises(TickerError, match=r"TSLA: Yahoo download failed after 3 attempts \(YFRateLimitError"):
        source(replay).fetch("TSLA", *JULY)
    assert len(replay.calls) == 3


def test_an_unexpected_failure_is_not_retried_and_names_the_ticker() -> None:
    replay = Replay(KeyError("chart"))
    with pytest.raises(TickerError, match=r"^TSLA: Yahoo download failed \(KeyError"):
        source(replay).fetch("TSLA", *JULY)
    assert len(replay.calls) == 1


def test_a_frame_for_another_ticker_is_refused() -> None:
    other = download_frame({"AAPL": history_frame(recorded()), "MSFT": history_frame(recorded())})
    with pytest.raises(TickerError, match="not for TSLA"):
        source(Replay(other)).fetch("TSLA", *JULY)


def test_partial_nan_rows_are_kept_for_validation_all_nan_rows_dropped() -> None:
    values = recorded()
    frame = history_frame(values)
    frame.iloc[-1, :5] = float("nan")  # no trade at all: dropped like yfinance keepna=False
    frame.iloc[-2, frame.columns.get_loc("Close")] = float("nan")  # broken: validation rejects
    got = source(Replay(frame)).fetch("TSLA", *JULY)
    assert got["date"].iat[-1] == dt.date(2020, 7, 30)
    assert pd.isna(got["close"].iat[-1])


def test_no_network_fails_at_once_with_the_next_step() -> None:
    """A DNS failure or a refused connection is not a busy server: one attempt, and the line
    says what to use instead. The recorded errors are curl_cffi's, as yfinance raises them."""
    from curl_cffi.requests.exceptions import ConnectionError as CurlConnectionError
    from curl_cffi.requests.exceptions import DNSError

    dns = DNSError("Failed to perform, curl: (6) Could not resolve host: query1.finance.yahoo.com", 6)
    refused = CurlConnectionError("Failed to perform, curl: (7) Couldn't connect to server", 7)
    for error in (dns, refused, ConnectionRefusedError(111, "Connection refused")):
        replay = Replay(error)
        with pytest.raises(TickerError, match=r"^TSLA: Yahoo is unreachable .*--source sample.*--source csv"):
            source(replay, attempts=4).fetch("TSLA", *JULY)
        assert len(replay.calls) == 1, error


def test_a_temporary_dns_failure_is_retried_and_a_looping_cause_chain_ends() -> None:
    import socket

    from job.ingest.sources.yahoo import unreachable

    good = download_frame({"TSLA": history_frame(recorded())})
    blip = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    replay = Replay(blip, good)
    check_normalized(source(replay).fetch("TSLA", *JULY), rows=22)
    assert len(replay.calls) == 2
    first, second = ValueError("a"), ValueError("b")
    first.__cause__, second.__cause__ = second, first
    assert unreachable(first) is False
