"""Ticker symbols are checked once, before they reach a file path, a query or a download."""

import re

from job.errors import NightcastError

_TICKER = re.compile(r"[A-Z0-9.\-^=]{1,15}")


def normalize_ticker(raw: str) -> str:
    """Upper-case and validate a symbol such as `brk-b` or `^GSPC`."""
    ticker = raw.strip().upper()
    if not _TICKER.fullmatch(ticker):
        raise NightcastError(
            f"invalid ticker {raw!r}: use 1-15 letters, digits or . - ^ = (e.g. TSLA, BRK-B, ^GSPC)"
        )
    return ticker


def parse_tickers(raw: str) -> list[str]:
    """Comma-separated symbols from the command line, normalized and de-duplicated in order."""
    tickers = [normalize_ticker(part) for part in raw.split(",") if part.strip()]
    if not tickers:
        raise NightcastError("--tickers: no ticker given")
    return list(dict.fromkeys(tickers))
