"""Daily bars from Yahoo Finance through yfinance 1.x.

Shapes this adapter accepts (both are what yfinance 1.x really returns):
- `yf.download(...)`: columns MultiIndex named ['Price', 'Ticker'] even for one ticker
  (single-level with `multi_level_index=False`); for daily bars the index is tz-naive
  (`ignore_tz` defaults to True for daily intervals) and named 'Date'.
- `yf.Ticker(t).history(...)`: single-level columns, index tz-aware in the exchange's
  time zone at local midnight, named 'Date'.
The session date is the index's own local date (never converted to UTC first: midnight in
Tokyo is the previous day in UTC).

Why the default downloader is not `yf.download`: download() catches every per-ticker
exception (rate limits, network faults, unknown symbols alike), logs it and returns an
empty frame, so a rate limit would look exactly like a delisted ticker and could not be
retried. `history_download` has download()'s signature and frame shape but goes through
`Ticker.history` with yfinance's exceptions raised. `yf.download` itself can still be
injected (`YahooSource(download=yf.download)`); failures then surface as "unknown or
delisted".

Price repair (`repair=True`, yfinance's "price repair"): yfinance fixes what it can detect
in the bars it was asked for (100x currency-unit mix-ups, bad split adjustment, bad
dividend adjustment, zero prices) and adds a boolean `Repaired?` column, which
`normalize_frame` ignores like any other extra column. It works on the requested window
only: a bar is fixed when its neighbours in the window (or a split/dividend event in it)
show what it should be, so a window holding only bad bars comes back unchanged. The
dividend and split events it needs come with the same chart request (yfinance always
asks for `events=div,splits,capitalGains`); the extra requests it can make are:
- finer bars (1h for daily data) for rows it tagged as bad, and only for rows Yahoo still
  has finer bars for (the last ~730 days): `PriceHistory._reconstruct_intervals_batch`
  calls `history(interval="1h", repair=True)`;
- an FX rate (`<CUR>=X`, one month of daily bars) when dividends come in a currency other
  than the prices' (`PriceHistory._dividends_convert_fx`).
Neither call is guarded inside yfinance, so with `debug.hide_exceptions` off (as here)
their failures propagate like the main request's: a rate limit is `YFRateLimitError`, a
network fault an `OSError`, both retried by `YahooSource`. (With hide_exceptions on,
yfinance's default, a failed finer-bars request is only logged and those rows are left as
served; a rate limit raises either way; a failed FX lookup ends in an IndexError.) The
one failure that would be misread is "no prices" (`YFPricesMissingError`) from an extra
request: it names our ticker, and `YahooSource` would take it for "this ticker has no
bars". `history_download` therefore asks again without repair when a repaired download
reports missing prices (see there).
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pandas as pd
import tenacity
import yfinance as yf
from yfinance.exceptions import (
    YFDataException,
    YFPricesMissingError,
    YFRateLimitError,
    YFTickerMissingError,
    YFTzMissingError,
)

from job.errors import TickerError
from job.ingest.sources.base import FRAME_COLUMNS, YAHOO_COLUMNS, empty_frame, finish
from job.support.calendar import Calendars, Sessions
from job.support.clock import utcnow

if TYPE_CHECKING:
    import curl_cffi.requests
    import requests

    #: What yfinance accepts as `session`: a requests or a curl_cffi session.
    HttpSession = requests.Session | curl_cffi.requests.Session

log = logging.getLogger(__name__)

#: Called like `yf.download(ticker, start=..., end=..., **DOWNLOAD_OPTIONS)`; end is exclusive.
Download = Callable[..., pd.DataFrame]

DOWNLOAD_OPTIONS: dict[str, Any] = {
    "interval": "1d",
    "auto_adjust": False,  # keep both Close (split-adjusted) and Adj Close (plus dividends)
    "actions": False,
    "progress": False,
    "threads": False,
    "multi_level_index": True,
    "repair": True,  # yfinance's price repair; see the module doc for what it fixes and fetches
}

#: How far before the first bar asked for every download reaches (the bars before it are
#: dropped again). Price repair judges a bar by its neighbours in the window, so a short
#: nightly append gets good bars beside it; and an answer that is empty over two months
#: means an unknown or delisted ticker, while an empty night only means no new bar yet.
REACH = dt.timedelta(days=60)

#: Worth another try: Yahoo's 429, "Yahoo is down", and any network error (requests and
#: curl_cffi exceptions are OSErrors, as are ConnectionError and TimeoutError).
RETRYABLE: tuple[type[BaseException], ...] = (YFRateLimitError, OSError)


@contextmanager
def _yfinance_raises() -> Iterator[None]:
    """Make yfinance raise instead of logging and returning an empty frame.

    `raise_errors=True` alone is not enough: the time-zone lookup that runs first turns a
    network error into "possibly delisted" unless `debug.hide_exceptions` is off.

    The 'yfinance' logger's level is restored too: price repair silences it (CRITICAL)
    around its finer-interval request and only sets it back when that request returns, so
    a failure there would leave yfinance's logging muted for the rest of the process.
    """
    before = yf.config.debug.hide_exceptions
    yf_logger = logging.getLogger("yfinance")
    level = yf_logger.level
    yf.config.debug.hide_exceptions = False
    try:
        yield
    finally:
        yf.config.debug.hide_exceptions = before
        yf_logger.setLevel(level)


def history_download(
    tickers: str,
    *,
    start: dt.date,
    end: dt.date,
    interval: str = "1d",
    auto_adjust: bool = False,
    actions: bool = False,
    multi_level_index: bool = True,
    repair: bool = True,
    timeout: float = 20,
    session: HttpSession | None = None,
    **_ignored: Any,
) -> pd.DataFrame:
    """`yf.download` for one ticker, same frame shape, but failures raise (see module doc).

    `session` (a `requests.Session` or curl_cffi session; None = yfinance's own) carries
    every request, repair's extra ones included; tests pass one that replays recorded
    responses. yfinance keeps one data client per process, so a session passed here stays
    in use for later calls that pass none, until another session is passed.

    With `repair`, a `YFPricesMissingError` may come from one of repair's extra requests
    (finer bars that Yahoo does not have, an FX rate) rather than from the bars asked for;
    the exception cannot tell which. So the download is asked again without repair: if
    Yahoo has no bars, that raises the same error again, now meaning the ticker; if it
    has them, they are returned unrepaired, with a warning, which is what yfinance itself
    does for bars it cannot reconstruct (it logs and keeps the values Yahoo served).
    """
    options: dict[str, Any] = {
        "start": start,
        "end": end,
        "interval": interval,
        "auto_adjust": auto_adjust,
        "actions": actions,
        "timeout": timeout,
    }
    with _yfinance_raises():
        try:
            frame = yf.Ticker(tickers, session=session).history(repair=repair, **options)
        except YFPricesMissingError as exc:
            if not repair:
                raise
            frame = yf.Ticker(tickers, session=session).history(repair=False, **options)
            log.warning(
                "%s: Yahoo price repair could not fetch what it needed (%s); bars from %s to before %s "
                "kept unrepaired",
                tickers,
                exc,
                start,
                end,
            )
    if multi_level_index:
        frame.columns = pd.MultiIndex.from_product([frame.columns, [tickers]], names=["Price", "Ticker"])
    return frame


def normalize_frame(raw: pd.DataFrame, ticker: str) -> pd.DataFrame:
    """A yfinance frame (either column shape, tz-aware or naive index) -> normalized columns."""
    frame = raw
    if isinstance(frame.columns, pd.MultiIndex):
        names = list(frame.columns.names)
        level = names.index("Ticker") if "Ticker" in names else 1
        present = list(dict.fromkeys(frame.columns.get_level_values(level)))
        if ticker in present:
            frame = frame.xs(ticker, axis=1, level=level)
        elif len(present) == 1:
            frame = frame.xs(present[0], axis=1, level=level)
        else:
            raise TickerError(ticker, f"Yahoo returned columns for {present}, not for {ticker}")
    frame = frame.copy()
    if "Date" in frame.columns:
        frame = frame.set_index("Date")
    if frame.empty:
        return empty_frame()
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise TickerError(ticker, f"Yahoo returned an index of {type(frame.index).__name__}, not dates")
    if "Adj Close" not in frame.columns and "Close" in frame.columns:
        frame["Adj Close"] = frame["Close"]  # only when someone injected auto_adjust=True
    missing = [c for c in YAHOO_COLUMNS if c != "Date" and c not in frame.columns]
    if missing:
        raise TickerError(ticker, f"Yahoo frame lacks column(s) {', '.join(missing)}")
    # Rows where Yahoo has no price at all are "no trade" rows; yfinance drops them unless
    # keepna=True (and download() reindexes tickers onto a shared index). Partial NaNs stay
    # for validation to reject with their date.
    prices = ["Open", "High", "Low", "Close"]
    frame = frame.loc[frame[prices].notna().any(axis=1)]
    out = pd.DataFrame(
        {
            "date": [ts.date() for ts in frame.index],  # local date of the exchange's midnight
            **{YAHOO_COLUMNS[c]: frame[c].to_numpy() for c in YAHOO_COLUMNS if c != "Date"},
        }
    )
    return out.loc[:, list(FRAME_COLUMNS)]


class YahooSource:
    """Yahoo Finance daily bars, with retries and only closed sessions.

    `download` (yf.download-compatible) and `clock` are injectable so tests replay recorded
    frames at a chosen moment; `wait_initial`/`wait_max` shrink the backoff in tests.
    `session` is handed to `download` (both `history_download` and `yf.download` take it):
    None lets yfinance use its own; tests pass one that answers from recorded responses,
    so yfinance's real parsing and repair run on them.
    """

    name = "yahoo"

    def __init__(
        self,
        calendars: Callable[[str], Sessions] | None = None,
        *,
        download: Download = history_download,
        clock: Callable[[], dt.datetime] | None = None,
        attempts: int = 4,
        wait_initial: float = 2.0,
        wait_max: float = 60.0,
        session: HttpSession | None = None,
    ) -> None:
        self.calendars = calendars or Calendars()
        self._download = download
        self._clock = clock or utcnow
        self._attempts = attempts
        self._wait = tenacity.wait_exponential(multiplier=wait_initial, max=wait_max) + tenacity.wait_random(
            0, wait_initial
        )
        self._session = session

    def fetch(self, ticker: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Closed sessions start..end (inclusive). Empty frame = no closed session in range
        yet; `TickerError` = unknown/delisted ticker or Yahoo failing after retries."""
        sessions = self.calendars(ticker)
        last_closed = sessions.last_closed_session(self._clock())
        end = min(end, last_closed)
        if not sessions.sessions_in_range(start, end):
            return empty_frame()  # e.g. a weekend, or tonight's close has not happened yet
        reach = start - REACH
        frame = self._get(ticker, reach, end)
        if frame is None or frame.empty:
            raise TickerError(
                ticker, f"unknown or delisted ticker (Yahoo has no prices for it in {reach}..{end})"
            )
        # The in-progress bar of a session whose close has not happened yet is dropped here,
        # and so are the bars before `start`; none left means no new bar yet.
        return finish(frame, start, end)

    def _get(self, ticker: str, start: dt.date, end: dt.date) -> pd.DataFrame | None:
        """One download with retries; None when yfinance says the ticker has no prices."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception(_retryable),
            before_sleep=lambda state: log.warning(
                "%s: Yahoo attempt %d failed (%s), retrying",
                ticker,
                state.attempt_number,
                state.outcome.exception() if state.outcome else "?",
            ),
            reraise=True,
        )
        try:
            raw = retrying(
                self._download,
                ticker,
                start=start,
                end=end + dt.timedelta(days=1),  # yfinance's end is exclusive
                session=self._session,
                **DOWNLOAD_OPTIONS,
            )
        except (YFTzMissingError, YFPricesMissingError, YFTickerMissingError):
            return None
        except Exception as exc:
            if unreachable(exc):
                raise TickerError(
                    ticker,
                    "Yahoo is unreachable (no DNS or connection refused): check the network, or "
                    "use --source sample, or --source csv --csv PATH for files you have",
                ) from exc
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            reason = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
            tries = f" after {self._attempts} attempts" if _retryable(exc) else ""
            raise TickerError(ticker, f"Yahoo download failed{tries} ({reason})") from exc
        if raw is None:
            return None
        return normalize_frame(raw, ticker)


#: curl's "could not resolve host" and "could not connect": no network, not a busy server.
_UNREACHABLE_CURL_CODES = (6, 7)
_UNREACHABLE_TEXT = (
    "could not resolve",
    "failed to resolve",
    "name or service not known",
    "connection refused",
)


def unreachable(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says Yahoo cannot be reached at all: a DNS lookup
    that failed or a connection refused. Retrying that only makes an offline run slow."""
    seen: BaseException | None = exc
    visited: set[int] = set()
    while seen is not None and id(seen) not in visited:  # a chain may loop
        visited.add(id(seen))
        if isinstance(seen, socket.gaierror) and seen.errno == socket.EAI_AGAIN:
            return False  # "temporary failure in name resolution": worth the retries
        if isinstance(seen, socket.gaierror | ConnectionRefusedError):
            return True
        if getattr(seen, "code", None) in _UNREACHABLE_CURL_CODES and isinstance(seen, OSError):
            return True
        if isinstance(seen, OSError) and any(text in str(seen).lower() for text in _UNREACHABLE_TEXT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _retryable(exc: BaseException) -> bool:
    if unreachable(exc):
        return False
    if isinstance(exc, RETRYABLE):
        return True
    return isinstance(exc, YFDataException) and "DOWN" in str(exc).upper()
