"""yfinance's price repair, run for real on recorded Yahoo responses.

Nothing here builds yfinance's frames by hand: `YahooSource` -> `history_download` ->
`yf.Ticker(t, session=...).history(repair=True)` runs yfinance 1.7's own request,
parsing and repair code, and only the HTTP transport is replaced. `RecordedYahoo` is a
`requests` transport adapter that answers every request of a real `requests.Session`:

- the chart API (`query1`/`query2.finance.yahoo.com/v8/finance/chart/<T>`) from the
  recorded JSON in `tests/fixtures/yahoo_chart/` (made by `make_fixtures.py` there from
  Yahoo's bad series that yfinance's own repair tests use), sliced to the
  `period1`/`period2` asked for, as Yahoo does; `range=1d` (yfinance's time-zone lookup)
  gets the last recorded session;
- the cookie/crumb dance yfinance does first (`fc.yahoo.com`, `/v1/test/getcrumb`, and
  `guce.yahoo.com/consent` after an HTTP error) minimally: 404 for the cookie pages (no
  cookie set; yfinance goes on without one) and a fixed crumb;
- anything else, and any chart interval a test did not script, is an unexpected request:
  recorded and raised, and the test fails at teardown even if yfinance swallowed it.

Every test also runs with real sockets forbidden, a fresh yfinance cache folder (time
zones, cookies) under tmp_path, yfinance's in-process response cache cleared and its
process-wide data client (`YfData`, a singleton) put back afterwards.

What yfinance 1.7 does with these recordings (checked below):
- AET.L (LSE, GBp, 2022-05-03..2022-06-06): 14 of 23 sessions served 100x too small
  (0.1455 for 14.55). Repaired from the daily bars alone: all 14, every column equal to
  yfinance's `_fixed` file (its 14.5500004291534 is 100 x float32(0.1455); rel 3e-8).
- 4063.T (Tokyo, JPY, 2023-03-15..2023-04-14, split 5:1 and dividend 55 on 2023-03-30):
  the 9 sessions up to 2023-03-28 served at the pre-split level (x5, volume /5). All 9
  repaired from the daily bars and the split event, equal to the `_fixed` file.
- CALM (Nasdaq, 2022-01-03..2024-08-21, 10 dividends): nothing changed.
- Requests: the time-zone lookup (`range=1d`) and one daily chart request; repair asked
  for nothing more. Its request for 1h bars of rows it tagged is only made for rows
  younger than ~730 days by the wall clock, so for these 2022-23 recordings only when a
  test moves yfinance's clock back (and then only where daily bars cannot settle it).
- Repair only sees the requested window: a window of only bad bars (a nightly append of
  a few sessions) comes back as served; so every YahooSource request reaches two months
  further back (`REACH`), and the nightly window is repaired from its good neighbours.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pytest
import requests
import yfinance as yf
import yfinance.cache
import yfinance.scrapers.history
from requests.adapters import BaseAdapter
from yfinance.data import YfData

from job.errors import TickerError
from job.ingest.sources.yahoo import DOWNLOAD_OPTIONS, REACH, YahooSource, history_download, normalize_frame
from job.support.calendar import Calendars

#: yfinance 1.7 calls pandas APIs that pandas deprecates (inplace=...): nothing we can act on.
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame")

FIXTURES = Path(__file__).parent / "fixtures" / "yahoo_chart"
ANOMALIES = Path(__file__).parent / "fixtures" / "yahoo-anomalies"
UTC = dt.UTC

CRUMB = "recorded-crumb"
TOO_MANY_REQUESTS = 429
#: What a network fault looks like to yfinance (requests' exceptions are OSErrors).
RESET = requests.exceptions.ConnectionError("Connection reset by peer (scripted)")


class UnexpectedRequest(AssertionError):
    """A request the recordings do not cover: the test must fail, whatever yfinance does."""


@dataclass(frozen=True)
class Case:
    ticker: str
    recording: str  # <ticker>_<kind>.json in FIXTURES
    calendar: str  # job.support.calendar name of the exchange
    first: dt.date
    last: dt.date
    clock: dt.datetime  # the nightly run: after the last session's close
    fixed: str | None  # yfinance's repair output (tests/fixtures/yahoo-anomalies/*_fixed.csv)
    bad_dates: tuple[str, ...] = ()  # sessions Yahoo served wrong, per the source README

    def served(self) -> pd.DataFrame:
        """The bars as recorded (what Yahoo served), as YahooSource's normalized columns."""
        result = json.loads((FIXTURES / self.recording).read_text())["chart"]["result"][0]
        quote = result["indicators"]["quote"][0]
        tz = result["meta"]["exchangeTimezoneName"]
        dates = pd.to_datetime(result["timestamp"], unit="s", utc=True).tz_convert(tz).date
        return pd.DataFrame(
            {
                "date": list(dates),
                "open": quote["open"],
                "high": quote["high"],
                "low": quote["low"],
                "close": quote["close"],
                "adj_close": result["indicators"]["adjclose"][0]["adjclose"],
                "volume": np.asarray(quote["volume"], dtype="float64"),
            }
        )

    def expected(self) -> pd.DataFrame:
        """yfinance's own repair output for the whole recording (the `_fixed` file)."""
        assert self.fixed is not None
        fixed = pd.read_csv(ANOMALIES / self.fixed)
        return pd.DataFrame(
            {
                "date": [dt.date.fromisoformat(d) for d in fixed["Date"]],
                "open": fixed["Open"],
                "high": fixed["High"],
                "low": fixed["Low"],
                "close": fixed["Close"],
                "adj_close": fixed["Adj Close"],
                "volume": fixed["Volume"].astype("float64"),
            }
        )


AET = Case(
    "AET.L",
    "AET.L_100x.json",
    "XLON",
    dt.date(2022, 5, 3),
    dt.date(2022, 6, 6),
    dt.datetime(2022, 6, 6, 18, 0, tzinfo=UTC),  # LSE closes 16:30 BST
    "AET.L_100x_fixed.csv",
    (  # 4 bad sessions, 9 good ones, 10 bad ones
        "2022-05-03",
        "2022-05-04",
        "2022-05-05",
        "2022-05-06",
        "2022-05-20",
        "2022-05-23",
        "2022-05-24",
        "2022-05-25",
        "2022-05-26",
        "2022-05-27",
        "2022-05-30",
        "2022-05-31",
        "2022-06-01",
        "2022-06-06",
    ),
)
SHIN_ETSU = Case(
    "4063.T",
    "4063.T_split.json",
    "XTKS",
    dt.date(2023, 3, 15),
    dt.date(2023, 4, 14),
    dt.datetime(2023, 4, 14, 12, 0, tzinfo=UTC),  # TSE closes 15:00 JST
    "4063.T_split_fixed.csv",
    (  # all sessions before the split's eve (2023-03-29, already post-split)
        "2023-03-15",
        "2023-03-16",
        "2023-03-17",
        "2023-03-20",
        "2023-03-22",
        "2023-03-23",
        "2023-03-24",
        "2023-03-27",
        "2023-03-28",
    ),
)
CALM = Case(
    "CALM",
    "CALM_clean.json",
    "XNYS",
    dt.date(2022, 1, 3),
    dt.date(2024, 8, 21),
    dt.datetime(2024, 8, 21, 22, 0, tzinfo=UTC),  # Nasdaq closes 16:00 EDT
    None,
)


# ----------------------------------------------------------------------------------------
# The recorded Yahoo


Answer = int | BaseException | dict[str, Any]


@dataclass
class RecordedYahoo(BaseAdapter):
    """A transport adapter answering yfinance's requests from the recordings.

    `script(kind, *answers)` queues answers for the next chart requests of one kind
    ("tz" for the `range=1d` time-zone lookup, else the interval: "1d", "1h"): an int is
    an HTTP status with Yahoo's text body, an exception is raised from the transport (a
    network fault), a dict is a JSON body. Once a kind's queue is empty, "tz" and "1d"
    are answered from the recording; any other interval is unexpected.
    """

    charts: dict[str, dict[str, Any]]
    asked: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    scripted: dict[str, list[Answer]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__()

    def script(self, kind: str, *answers: Answer) -> None:
        self.scripted.setdefault(kind, []).extend(answers)

    def chart_kinds(self) -> list[str]:
        """The kind of every chart request, in order ("tz", "1d", "1h", ...)."""
        kinds = []
        for url in self.asked:
            parts = urlsplit(url)
            if parts.path.startswith("/v8/finance/chart/"):
                kinds.append(_kind({k: v[0] for k, v in parse_qs(parts.query).items()}))
        return kinds

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        url = request.url or ""
        self.asked.append(url)
        parts = urlsplit(url)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        host, path = parts.hostname or "", parts.path
        if request.method == "GET" and host in ("fc.yahoo.com", "guce.yahoo.com"):
            # Real Yahoo sets a cookie here (guce: a consent form); none is needed.
            return _response(request, 404, b"<html><body></body></html>", "text/html")
        if host in ("query1.finance.yahoo.com", "query2.finance.yahoo.com"):
            if path == "/v1/test/getcrumb":
                return _response(request, 200, CRUMB.encode())
            ticker = path.removeprefix("/v8/finance/chart/")
            if ticker != path and ticker in self.charts and request.method == "GET":
                return self._chart(request, ticker, params)
        self.unexpected.append(url)
        raise UnexpectedRequest(f"no recording answers {request.method} {url}")

    def _chart(
        self, request: requests.PreparedRequest, ticker: str, params: dict[str, str]
    ) -> requests.Response:
        kind = _kind(params)
        queue = self.scripted.get(kind)
        if queue:
            answer = queue.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            if isinstance(answer, int):
                return _response(request, answer, b"Too Many Requests\r\n", "text/plain")
            return _response(request, 200, json.dumps(answer).encode())
        if kind not in ("tz", "1d"):
            self.unexpected.append(request.url or "")
            raise UnexpectedRequest(f"no recording of {kind} bars for {ticker}: {request.url}")
        return _response(request, 200, json.dumps(_slice(self.charts[ticker], params)).encode())

    def close(self) -> None:
        pass


def _kind(params: dict[str, str]) -> str:
    return "tz" if params.get("range") == "1d" else params.get("interval", "?")


def _response(
    request: requests.PreparedRequest, status: int, body: bytes, content_type: str = "application/json"
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers["Content-Type"] = content_type
    response.encoding = "utf-8"
    response.url = request.url or ""
    response.request = request
    response.reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests"}.get(status, "")
    return response


def _slice(recorded: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    """Yahoo's answer to one chart request: the sessions (and events) it asks for.

    `period1 <= timestamp < period2`, or for `range=1d` the last session. No session in
    the range gives Yahoo's empty answer (meta, but no timestamps and an empty quote).
    """
    body = copy.deepcopy(recorded)
    result = body["chart"]["result"][0]
    result["meta"]["dataGranularity"] = params.get("interval", "1d")
    result["meta"]["range"] = params.get("range", "")
    stamps: list[int] = result["timestamp"]
    if params.get("range") == "1d":
        first, stop = stamps[-1], stamps[-1] + 1
    else:
        first, stop = int(params["period1"]), int(params["period2"])
    keep = [i for i, ts in enumerate(stamps) if first <= ts < stop]
    if not keep:
        return no_bars(recorded, params.get("interval", "1d"))
    result["timestamp"] = [stamps[i] for i in keep]
    quote = result["indicators"]["quote"][0]
    for column in quote:
        quote[column] = [quote[column][i] for i in keep]
    adj = result["indicators"]["adjclose"][0]
    adj["adjclose"] = [adj["adjclose"][i] for i in keep]
    for name, events in list(result.get("events", {}).items()):
        result["events"][name] = {k: v for k, v in events.items() if first <= v["date"] < stop}
    return body


def no_bars(recorded: dict[str, Any], interval: str) -> dict[str, Any]:
    """Yahoo's 200 answer for a range without bars (yfinance: YFPricesMissingError)."""
    meta = copy.deepcopy(recorded["chart"]["result"][0]["meta"])
    meta["dataGranularity"] = interval
    return {
        "chart": {"result": [{"meta": meta, "indicators": {"quote": [{}], "adjclose": [{}]}}], "error": None}
    }


def _load(case: Case) -> dict[str, Any]:
    return json.loads((FIXTURES / case.recording).read_text())


# ----------------------------------------------------------------------------------------
# Isolation: no network, no shared yfinance state


@pytest.fixture(autouse=True)
def _no_real_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: socket.socket, address: object) -> None:
        raise AssertionError(f"a test opened a real connection to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture
def yahoo(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[RecordedYahoo, requests.Session]]:
    """The recorded Yahoo on a fresh `requests.Session`, and yfinance with fresh state.

    yfinance keeps state per process: its time-zone and cookie caches (sqlite files in the
    user's cache folder; a new location only takes effect once yfinance rebuilds its cache
    objects, hence dropping them before and after), an lru cache of chart responses for
    past ranges, and one data client holding the session, cookie and crumb. Each test gets
    all of them fresh, so it asks for everything itself, writes nothing to the home
    folder, and can tell which URLs yfinance requested.
    """
    adapter = RecordedYahoo({c.ticker: _load(c) for c in (AET, SHIN_ETSU, CALM)})
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)

    cache_dir = tmp_path / "yfinance-cache"
    cache_dir.mkdir()
    previous_location = yfinance.cache._TzDBManager.get_location()
    _drop_yfinance_caches()
    yf.set_tz_cache_location(str(cache_dir))

    data = YfData(session=None)  # the singleton (made now if no test made it before)
    previous_session = data._session
    for name, value in {"_crumb": None, "_cookie": None, "_cookie_strategy": "basic"}.items():
        monkeypatch.setattr(data, name, value)
    YfData.cache_get.cache_clear()
    yf_logger_level = logging.getLogger("yfinance").level
    try:
        yield adapter, session
    finally:
        YfData.cache_get.cache_clear()
        YfData(session=previous_session)
        yf.set_tz_cache_location(previous_location)  # closes ours
        _drop_yfinance_caches()  # rebuilt at the previous location when next used
        assert logging.getLogger("yfinance").level == yf_logger_level, "yfinance's logger left muted"
    assert adapter.unexpected == [], f"yfinance asked for what no recording answers: {adapter.unexpected}"


def _drop_yfinance_caches() -> None:
    yfinance.cache._TzCacheManager._tz_cache = None
    yfinance.cache._CookieCacheManager._Cookie_cache = None


def source(case: Case, session: requests.Session, **kwargs: Any) -> YahooSource:
    options: dict[str, Any] = {"clock": lambda: case.clock, "wait_initial": 0.001, "wait_max": 0.002}
    return YahooSource(Calendars(case.calendar), session=session, **(options | kwargs))


class Counting:
    """`history_download`, counting the calls YahooSource makes (one per attempt)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, tickers: str, **kwargs: Any) -> pd.DataFrame:
        self.calls += 1
        return history_download(tickers, **kwargs)


def assert_bars_equal(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got["date"]) == list(expected["date"])
    for column in ("open", "high", "low", "close", "adj_close", "volume"):
        np.testing.assert_allclose(
            got[column].to_numpy(dtype="float64"),
            expected[column].to_numpy(dtype="float64"),
            rtol=1e-6,
            err_msg=column,
        )


def differing_dates(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    close_a, close_b = a["close"].to_numpy(dtype="float64"), b["close"].to_numpy(dtype="float64")
    differ = ~np.isclose(close_a, close_b, rtol=1e-6, atol=0)
    return [d.isoformat() for d in a["date"][differ]]


def chart_urls(adapter: RecordedYahoo) -> list[str]:
    return [u for u in adapter.asked if "/v8/finance/chart/" in u]


def cookie_urls(adapter: RecordedYahoo) -> set[str]:
    return {urlsplit(u)._replace(query="").geturl() for u in adapter.asked if "/v8/finance/chart/" not in u}


COOKIE_DANCE = {"https://fc.yahoo.com/", "https://query1.finance.yahoo.com/v1/test/getcrumb"}


# ----------------------------------------------------------------------------------------
# What repair fixes, and what it leaves


@pytest.mark.parametrize("case", [AET, SHIN_ETSU], ids=lambda c: c.ticker)
def test_repair_gives_yfinances_own_fixed_bars(
    case: Case, yahoo: tuple[RecordedYahoo, requests.Session]
) -> None:
    """The whole recording through YahooSource equals yfinance's `_fixed` file.

    AET.L: the 14 sessions served 100x too small are fixed (and the 9 good ones kept);
    4063.T: the 9 sessions before the 5:1 split served unadjusted are divided by 5, their
    volume multiplied by 5. Both from the daily bars alone: the requests are the
    time-zone lookup and the one daily chart request, nothing for repair.
    """
    adapter, session = yahoo
    got = source(case, session).fetch(case.ticker, case.first, case.last)
    expected = case.expected()
    assert differing_dates(case.served(), expected) == list(case.bad_dates)  # not vacuous
    assert_bars_equal(got, expected)

    assert adapter.chart_kinds() == ["tz", "1d"]
    base = f"https://query2.finance.yahoo.com/v8/finance/chart/{case.ticker}"
    daily = chart_urls(adapter)[1]
    assert daily.startswith(f"{base}?period1=")
    assert "interval=1d" in daily and "events=div%2Csplits%2CcapitalGains" in daily
    assert f"crumb={CRUMB}" in daily
    assert cookie_urls(adapter) == COOKIE_DANCE


def test_repair_leaves_a_clean_series_unchanged(yahoo: tuple[RecordedYahoo, requests.Session]) -> None:
    """CALM, 662 sessions with 10 dividends (so the dividend-adjustment check runs):
    every value comes back exactly as served."""
    adapter, session = yahoo
    got = source(CALM, session).fetch(CALM.ticker, CALM.first, CALM.last)
    served = CALM.served()
    assert len(got) == 662
    pd.testing.assert_frame_equal(got.reset_index(drop=True), served, check_dtype=False, rtol=0, atol=0)
    assert adapter.chart_kinds() == ["tz", "1d"]


@pytest.mark.parametrize("case", [AET, SHIN_ETSU], ids=lambda c: c.ticker)
def test_without_repair_the_served_values_come_through(
    case: Case, yahoo: tuple[RecordedYahoo, requests.Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same requests with `repair` off return Yahoo's bad bars, so the test above
    shows repair at work, not something else in the path."""
    _, session = yahoo
    monkeypatch.setitem(DOWNLOAD_OPTIONS, "repair", False)
    got = source(case, session).fetch(case.ticker, case.first, case.last)
    assert_bars_equal(got, case.served())
    assert differing_dates(got, case.expected()) == list(case.bad_dates)


@pytest.mark.parametrize(
    ("case", "first", "last"),
    [
        pytest.param(AET, dt.date(2022, 5, 20), AET.last, id="AET.L-only-the-bad-run"),
        pytest.param(AET, dt.date(2022, 5, 3), dt.date(2022, 5, 10), id="AET.L-4-bad-2-good"),
        pytest.param(SHIN_ETSU, dt.date(2023, 3, 15), dt.date(2023, 3, 28), id="4063.T-before-the-split"),
        pytest.param(SHIN_ETSU, dt.date(2023, 3, 28), dt.date(2023, 3, 29), id="4063.T-split-event-outside"),
    ],
)
def test_repair_only_sees_the_requested_window(
    case: Case, first: dt.date, last: dt.date, yahoo: tuple[RecordedYahoo, requests.Session]
) -> None:
    """yfinance alone: a window without good neighbours or the split event comes back as served.

    yfinance repairs by comparing bars within the window it was asked for. With only the
    bad run of AET.L (or 4 bad sessions and 2 good ones) the 100x level looks normal; the
    4063.T sessions before 2023-03-29 look unadjusted only next to the split on 03-30. A
    nightly append of one or a few sessions is such a window, hence `REACH` below.
    """
    _, session = yahoo
    raw = history_download(case.ticker, start=first, end=last + dt.timedelta(days=1), session=session)
    got = normalize_frame(raw, case.ticker)
    served = case.served()
    in_window = served[(served["date"] >= first) & (served["date"] <= last)].reset_index(drop=True)
    assert_bars_equal(got, in_window)
    assert any(d.isoformat() in case.bad_dates for d in got["date"])


def test_a_short_window_reaches_back_so_that_repair_sees_good_neighbours(
    yahoo: tuple[RecordedYahoo, requests.Session],
) -> None:
    """The bad run of AET.L alone, asked of YahooSource: its request reaches `REACH` back,
    to the good sessions before the run, and the run comes back repaired."""
    adapter, session = yahoo
    first = dt.date(2022, 5, 20)
    got = source(AET, session).fetch(AET.ticker, first, AET.last)
    expected = AET.expected()
    assert_bars_equal(got, expected[expected["date"] >= first].reset_index(drop=True))
    assert len(got) == 10 and all(d.isoformat() in AET.bad_dates for d in got["date"])
    assert (
        f"period1={int(dt.datetime.combine(first - REACH, dt.time(), UTC).timestamp())}"
        in chart_urls(adapter)[1]
    )


def test_extra_columns_from_repair_and_actions_do_no_harm(
    yahoo: tuple[RecordedYahoo, requests.Session],
) -> None:
    """`Repaired?` (repair) and `Dividends`/`Stock Splits` (actions=True) are extra columns
    in both frame shapes; normalize_frame keeps only the price columns."""
    _, session = yahoo
    options = DOWNLOAD_OPTIONS | {"actions": True}
    end = SHIN_ETSU.last + dt.timedelta(days=1)
    multi = history_download(SHIN_ETSU.ticker, start=SHIN_ETSU.first, end=end, session=session, **options)
    assert {"Repaired?", "Dividends", "Stock Splits"} <= set(multi.columns.get_level_values("Price"))
    assert multi[("Stock Splits", "4063.T")].sum() == 5.0
    assert multi[("Dividends", "4063.T")].sum() == 55.0
    assert int(multi[("Repaired?", "4063.T")].sum()) == 9
    single = multi.droplevel("Ticker", axis=1)
    for frame in (multi, single):
        assert_bars_equal(normalize_frame(frame, SHIN_ETSU.ticker), SHIN_ETSU.expected())


# ----------------------------------------------------------------------------------------
# Failures, on the chart request and on repair's own request


@pytest.mark.parametrize(
    ("faults", "requests_per_failed_attempt"),
    [
        pytest.param([TOO_MANY_REQUESTS, TOO_MANY_REQUESTS], 2, id="429"),
        pytest.param([RESET], 1, id="connection-reset"),
    ],
)
def test_rate_limit_or_network_fault_on_the_chart_request_is_retried(
    faults: list[Answer], requests_per_failed_attempt: int, yahoo: tuple[RecordedYahoo, requests.Session]
) -> None:
    """A 429 (yfinance retries it once itself, with the other cookie strategy, then raises
    YFRateLimitError) or a connection reset (OSError) on the daily chart request makes
    YahooSource try again; the second attempt gets the recording and repairs it."""
    adapter, session = yahoo
    adapter.script("1d", *faults)
    download = Counting()
    got = source(AET, session, download=download).fetch(AET.ticker, AET.first, AET.last)
    assert download.calls == 2
    assert_bars_equal(got, AET.expected())
    assert adapter.chart_kinds() == ["tz"] + ["1d"] * (requests_per_failed_attempt + 1)
    if faults[0] == TOO_MANY_REQUESTS:  # yfinance's own retry tries the consent cookie first
        assert "https://guce.yahoo.com/consent" in cookie_urls(adapter)


def test_a_persistent_rate_limit_ends_in_a_ticker_error(
    yahoo: tuple[RecordedYahoo, requests.Session],
) -> None:
    adapter, session = yahoo
    adapter.script("1d", *[TOO_MANY_REQUESTS] * 6)
    download = Counting()
    with pytest.raises(
        TickerError, match=r"AET\.L: Yahoo download failed after 3 attempts \(YFRateLimitError"
    ):
        source(AET, session, download=download, attempts=3).fetch(AET.ticker, AET.first, AET.last)
    assert download.calls == 3


class _Delegate:
    """A stand-in for a module: its own attributes first, then the module's."""

    def __init__(self, module: object, **own: object) -> None:
        self._module = module
        self.__dict__.update(own)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def move_yfinances_clock(monkeypatch: pytest.MonkeyPatch, now: dt.datetime) -> None:
    """Make yfinance's price-history code believe it is `now`.

    Repair asks for 1h bars only for rows Yahoo still has them for, judged by the wall
    clock (`pd.Timestamp.now`, `datetime.date.today` in yfinance/scrapers/history.py). Our
    recordings are from 2022-23, so that request is only made if yfinance's clock is put
    back to the night of the recording. Only that module's names are replaced.
    """
    frozen = pd.Timestamp(now)

    class Timestamp(pd.Timestamp):
        @classmethod
        def now(cls, tz: Any = None) -> pd.Timestamp:  # type: ignore[override]
            return frozen.tz_convert(tz) if tz is not None else frozen.tz_convert(None)

    class Date(dt.date):
        @classmethod
        def today(cls) -> dt.date:  # type: ignore[override]
            return frozen.date()

    module = yfinance.scrapers.history
    monkeypatch.setattr(module, "pd", _Delegate(pd, Timestamp=Timestamp))
    monkeypatch.setattr(module, "_datetime", _Delegate(dt, date=Date))


#: AET.L's first week, fetched the night it ended: 4 sessions at 0.1455 then 2 at 14.55,
#: Volume 0 throughout. Repair cannot tell which level is right (see the window test); its
#: zero-volume check flags the jump to 14.55 on 2022-05-09 and asks for that week's 1h bars.
WEEK_FIRST, WEEK_LAST = dt.date(2022, 5, 3), dt.date(2022, 5, 10)
WEEK_NIGHT = dt.datetime(2022, 5, 10, 18, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fault", "requests_per_failed_attempt"),
    [
        pytest.param([TOO_MANY_REQUESTS, TOO_MANY_REQUESTS], 2, id="429"),
        pytest.param([RESET], 1, id="connection-reset"),
    ],
)
def test_a_failure_of_repairs_own_request_is_retried_like_the_main_one(
    fault: list[Answer],
    requests_per_failed_attempt: int,
    yahoo: tuple[RecordedYahoo, requests.Session],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """yfinance does not guard repair's 1h request: with exceptions on, its 429
    (YFRateLimitError) or connection reset (OSError) leaves `history` as if the main
    request had failed, and YahooSource retries the whole download.

    The second attempt's 1h request gets Yahoo's empty answer (not recorded: we have no 1h
    bars of AET.L), which yfinance turns into YFPricesMissingError naming AET.L, the same
    error as for a ticker without bars. history_download asks again without repair and
    returns the week as served, with a warning: what yfinance does with its default error
    hiding (it logs and keeps the served values of rows it cannot reconstruct).
    """
    adapter, session = yahoo
    move_yfinances_clock(monkeypatch, WEEK_NIGHT)
    adapter.script("1h", *fault, no_bars(_load(AET), "1h"))
    download = Counting()
    with caplog.at_level(logging.WARNING, logger="job.ingest.sources.yahoo"):
        got = source(AET, session, download=download, clock=lambda: WEEK_NIGHT).fetch(
            AET.ticker, WEEK_FIRST, WEEK_LAST
        )
    assert download.calls == 2
    served = AET.served()
    assert_bars_equal(got, served[(served["date"] >= WEEK_FIRST) & (served["date"] <= WEEK_LAST)])
    first_attempt = ["tz", "1d", *["1h"] * requests_per_failed_attempt]  # fails in repair's request
    second_attempt = ["1d", "1h", "1d"]  # no 1h bars, so asked again without repair
    assert adapter.chart_kinds() == first_attempt + second_attempt
    hourly = [u for u in chart_urls(adapter) if "interval=1h" in u]
    assert all("includePrePost=True" in u for u in hourly)
    warnings = [r.getMessage() for r in caplog.records if "kept unrepaired" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith("AET.L: Yahoo price repair could not fetch what it needed")
    assert "no price data found  (1h 2022-05-05 -> 2022-05-12)" in warnings[0]  # the 1h request's range


def test_no_bars_at_all_is_still_an_unknown_ticker_with_repair_on(
    yahoo: tuple[RecordedYahoo, requests.Session],
) -> None:
    """Asking again without repair does not hide a real "no prices": a month without bars
    raises YFPricesMissingError both times and YahooSource reports an unknown ticker, as
    before. (For a past range yfinance answers the second ask from its in-process cache of
    chart responses, so Yahoo sees one daily request.)"""
    adapter, session = yahoo
    adapter.script("1d", no_bars(_load(AET), "1d"))
    with pytest.raises(TickerError, match=r"^AET\.L: unknown or delisted ticker"):
        source(AET, session).fetch(AET.ticker, AET.first, AET.last)
    assert adapter.chart_kinds() == ["tz", "1d"]


def test_the_recorded_responses_parse_like_yahoos(yahoo: tuple[RecordedYahoo, requests.Session]) -> None:
    """yfinance reads the recordings as it reads Yahoo: exchange time zone, local
    midnight index, the currency and events of the meta/events blocks."""
    _, session = yahoo
    ticker = yf.Ticker(SHIN_ETSU.ticker, session=session)
    frame = ticker.history(
        start=SHIN_ETSU.first, end=SHIN_ETSU.last + dt.timedelta(days=1), auto_adjust=False
    )
    assert str(frame.index.tz) == "Asia/Tokyo"
    assert (frame.index == frame.index.normalize()).all()
    assert frame.index[0].date() == SHIN_ETSU.first and frame.index[-1].date() == SHIN_ETSU.last
    assert ticker.history_metadata["currency"] == "JPY"
    # yfinance keeps events at Yahoo's timestamp (the session's open, 09:00 in Tokyo).
    assert {ts.isoformat(): v for ts, v in ticker.splits.items()} == {"2023-03-30T09:00:00+09:00": 5.0}
    assert {ts.isoformat(): v for ts, v in ticker.dividends.items()} == {"2023-03-30T09:00:00+09:00": 55.0}
