"""The one exception type whose message is meant for people, not for a traceback."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence


class NightcastError(Exception):
    """A problem the user can act on; the CLI prints its message as one line and exits 1."""


class TickerError(NightcastError):
    """A problem with one ticker's data; the cycle records it and carries on with the others."""

    def __init__(self, ticker: str, message: str) -> None:
        super().__init__(f"{ticker}: {message}")
        self.ticker, self.message = ticker, message

    def __reduce__(self) -> tuple[type[TickerError], tuple[str, str]]:
        """Raised on a Dask worker, it reaches the caller whole."""
        return (TickerError, (self.ticker, self.message))


class Refused(TickerError):
    """A ticker's download refused whole (invalid, or anomalous at the source): nothing of it
    is stored and the ticker is flagged. One line shows the first few reasons; `span` holds
    the first and last date the refused bars cover, where known."""

    SHOWN = 3

    def __init__(
        self,
        ticker: str,
        verb: str,
        reasons: Sequence[str],
        origin: str | None = None,
        span: tuple[dt.date, dt.date] | None = None,
        advice: str = "",
    ) -> None:
        more = f"; and {len(reasons) - self.SHOWN} more" if len(reasons) > self.SHOWN else ""
        where = f"{origin}: " if origin else ""
        super().__init__(ticker, f"{where}{verb} {'; '.join(reasons[: self.SHOWN])}{more}{advice}")
        self.span = span


class UsageError(NightcastError):
    """A value given on the command line that cannot be used: exit code 2, like a malformed
    command line (the option is named in the message)."""


class ClaimLost(NightcastError):
    """The connection holding this cycle's claims is gone: stop before writing anything more."""


#: How much of a value from outside (a cell, an argument, a setting) a message quotes.
QUOTED = 40
#: The longest message nightcast prints or stores about one problem.
LONGEST = 1000


def quote(value: object) -> str:
    """`value` as a message quotes it: its repr, or a short prefix and its length, so that
    a 50 MB cell makes a short line, not a 50 MB log, flag and `job_runs` row."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= QUOTED:
        return repr(text)
    return f"{text[:QUOTED]!r}... ({len(text)} characters)"


def clip(text: str) -> str:
    """A message cut to LONGEST characters, saying how long it was."""
    return text if len(text) <= LONGEST else f"{text[:LONGEST]}... ({len(text)} characters)"


def one_line(exc: BaseException) -> str:
    """What went wrong, for people: one line, passwords scrubbed, no SQL or driver dump.

    A database error names the database and the driver's first line (SQLAlchemy's own text
    would add the statement and its parameters); anything unforeseen names its type.
    """
    from sqlalchemy.exc import DBAPIError

    from job.support.redact import redact

    if isinstance(exc, DBAPIError):
        text = f"database: {str(exc.orig).strip() or type(exc.orig).__name__}"
    elif isinstance(exc, NightcastError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return clip(redact(first))


def ticker_failure(ticker: str, exc: Exception, verify: Callable[[str], None]) -> str:
    """The one policy for a ticker that fails: one bad ticker never stops the others, so its
    error becomes one line for that ticker, naming it. What no other ticker could survive
    either is raised again: this process lost its claims (ClaimLost), or a database error
    came with the connection itself gone, which `verify` (the claims' check, run after the
    failed transaction was rolled back) turns into ClaimLost. The caller logs an
    `unforeseen` error with its traceback."""
    from sqlalchemy.exc import OperationalError

    if isinstance(exc, ClaimLost):
        raise exc
    if isinstance(exc, OperationalError):
        verify(ticker)
    return one_line(exc) if isinstance(exc, TickerError) else clip(f"{ticker}: {one_line(exc)}")


def unforeseen(exc: BaseException) -> bool:
    """A bug or a failure nobody wrote a message for: worth its traceback in the log."""
    from sqlalchemy.exc import DBAPIError

    return not isinstance(exc, NightcastError | DBAPIError)
