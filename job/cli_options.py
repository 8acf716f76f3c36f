"""The options and values the `nightcast` commands share: one definition each, so that a
flag reads and fails the same way on every command."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from job.errors import UsageError, quote

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL; overrides NIGHTCAST_DATABASE_URL (default sqlite:///nightcast.db).",
        show_default=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document instead (README: Output).")]


def tickers_option(help: str) -> Any:
    """--tickers, comma-separated symbols, with what leaving it out means on this command."""
    return Annotated[str | None, typer.Option("--tickers", help=help, show_default=False)]


def dated(flag: str, help: str) -> Any:
    """A YYYY-MM-DD option (`flag`: --start, --end, --as-of), read by `parse_date` or
    `parse_range` so that it fails alike on every command; `help` says what it bounds there."""
    return Annotated[str | None, typer.Option(flag, help=help, metavar="YYYY-MM-DD", show_default=False)]


Tickers = tickers_option("Comma-separated symbols; overrides NIGHTCAST_TICKERS.")
SourceName = Annotated[
    str | None,
    typer.Option("--source", help="yahoo, csv or sample; overrides NIGHTCAST_SOURCE.", show_default=False),
]
CsvPath = Annotated[
    Path | None,
    typer.Option(
        "--csv", help="A Yahoo-format CSV or a folder of TICKER.csv (source csv).", show_default=False
    ),
]
AsOf = dated("--as-of", "Replay as of this session's evening.")
Wait = Annotated[bool, typer.Option("--wait", help="Wait for a running cycle instead of exiting.")]


def parse_date(option: str, value: str | None) -> date | None:
    """Dates on the command line are ISO dates; anything else is one line naming the option."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option}: {quote(value)} is not a date (expected YYYY-MM-DD)") from None


def parse_range(start: str | None, end: str | None) -> tuple[date | None, date | None]:
    """--start and --end as dates, refusing a range that ends before it starts."""
    first, last = parse_date("--start", start), parse_date("--end", end)
    if first is not None and last is not None and last < first:
        raise UsageError(f"--end {last} is before --start {first}")
    return first, last


Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        help="Train on N local Dask worker processes; overrides NIGHTCAST_WORKERS (default: in-process).",
        show_default=False,
    ),
]
DaskAddress = Annotated[
    str | None,
    typer.Option(
        "--dask-address",
        help="Train on an existing Dask cluster, e.g. tcp://host:8786; overrides NIGHTCAST_DASK_ADDRESS.",
        show_default=False,
    ),
]
