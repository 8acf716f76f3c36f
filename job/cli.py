"""The `nightcast` command line.

Errors people can act on print as one line on stderr and exit 1; `--verbose` adds the
traceback. Every command takes `--database-url`, which overrides NIGHTCAST_DATABASE_URL.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Annotated

import typer
from sqlalchemy.exc import OperationalError

from job.config import load_settings
from job.errors import NightcastError

app = typer.Typer(
    name="nightcast",
    help="Nightly LSTM stock forecasts stored in SQL, always next to the naive forecast.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL; overrides NIGHTCAST_DATABASE_URL (default sqlite:///nightcast.db).",
        show_default=False,
    ),
]

log = logging.getLogger("nightcast")


@app.callback()
def _root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logs and tracebacks on errors.")
    ] = False,
) -> None:
    """Nightly LSTM stock forecasts stored in SQL, always next to the naive forecast."""
    _setup_logging(verbose)


@app.command()
def migrate(database_url: DatabaseUrl = None) -> None:
    """Create or upgrade the database schema to the newest revision (safe to repeat)."""
    from job.db.migrate import upgrade_to_head

    settings = load_settings(database_url=database_url)
    before, after = upgrade_to_head(settings.database_url)
    if before == after:
        typer.echo(f"{settings.safe_database_url}: schema already at revision {after}")
    else:
        typer.echo(f"{settings.safe_database_url}: schema upgraded {before or 'empty'} -> {after}")


@app.command()
def status(database_url: DatabaseUrl = None) -> None:
    """Schema revision, stored prices per ticker and the last job run."""
    from job.status import render_status

    settings = load_settings(database_url=database_url)
    typer.echo(render_status(settings))


def _setup_logging(verbose: bool) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    level = logging.DEBUG if verbose else logging.INFO
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    log.setLevel(level)
    for noisy in ("tensorflow", "absl", "h5py", "matplotlib", "yfinance"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _hide_password(message: str) -> str:
    """Scrub a database password that a driver may have echoed into an error."""
    try:
        password = _password_in_use()
    except Exception:  # an unparsable URL has no password to hide
        return message
    return message.replace(password, "***") if password else message


def _password_in_use() -> str | None:
    from sqlalchemy.engine import make_url

    for index, arg in enumerate(sys.argv):
        if arg == "--database-url" and index + 1 < len(sys.argv):
            return make_url(sys.argv[index + 1]).password
        if arg.startswith("--database-url="):
            return make_url(arg.split("=", 1)[1]).password
    raw = os.environ.get("NIGHTCAST_DATABASE_URL")
    return make_url(raw).password if raw else None


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the Typer app and turns failures into one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args or "-v" in args
    if verbose:  # accept --verbose anywhere on the line, not only before the command
        args = ["--verbose", *(a for a in args if a not in ("--verbose", "-v"))]
    try:
        app(args=args, prog_name="nightcast")  # standalone: usage errors exit 2 by themselves
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except OperationalError as exc:
        if verbose:
            traceback.print_exc()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        typer.echo(f"error: database: {_hide_password(reason)}", err=True)
        return 1
    except NightcastError as exc:
        if verbose:
            traceback.print_exc()
        typer.echo(f"error: {_hide_password(str(exc))}", err=True)
        return 1
    except Exception as exc:
        if verbose:
            traceback.print_exc()
        detail = _hide_password(f"{type(exc).__name__}: {exc}".splitlines()[0])
        typer.echo(f"error: {detail} (run with --verbose for the traceback)", err=True)
        return 1
    return 0
