"""Ticker symbols are checked once, before they reach a file path, a query or a download."""

import re

from job.errors import NightcastError, quote

_TICKER = re.compile(r"(?=.*[A-Z0-9])[A-Z0-9.\-^=]{1,15}")  # at least one letter or digit


def normalize_ticker(raw: str) -> str:
    """Upper-case and validate a symbol such as `brk-b` or `^GSPC`."""
    ticker = raw.strip().upper()
    if not _TICKER.fullmatch(ticker):
        raise NightcastError(
            f"invalid ticker {quote(raw)}: use 1-15 letters, digits or . - ^ =, with at least one letter or "
            "digit (e.g. TSLA, BRK-B, ^GSPC)"
        )
    return ticker


def is_ticker(text: str) -> bool:
    """Whether `text`, as written, is a ticker symbol's normal form."""
    return bool(_TICKER.fullmatch(text))
