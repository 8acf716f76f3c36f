"""The `nightcast` command line.

Errors people can act on print as one line on stderr and exit 1; `--verbose` adds the
traceback. Every command takes `--database-url`, which overrides NIGHTCAST_DATABASE_URL.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.exc import DBAPIError

from job.cli_options import (
    AsOf,
    CsvPath,
    DaskAddress,
    DatabaseUrl,
    Json,
    SourceName,
    Tickers,
    Wait,
    Workers,
    dated,
    parse_date,
    parse_range,
    tickers_option,
)
from job.config import Settings, load_settings
from job.errors import NightcastError, UsageError, one_line
from job.support.logs import setup_logging
from job.support.redact import redact

app = typer.Typer(
    name="nightcast",
    help="Nightly LSTM stock forecasts stored in SQL, always next to the naive forecast.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"nightcast {version('nightcast')}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logs and tracebacks on errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
    ] = False,
) -> None:
    """Nightly LSTM stock forecasts stored in SQL, always next to the naive forecast."""
    setup_logging(verbose, tracebacks=ctx.invoked_subcommand == "schedule")


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
def status(database_url: DatabaseUrl = None, json: Json = False) -> None:
    """Schema revision; per ticker the last session, next forecast, model age and skill; the last run."""
    from job.status import render_status, status_json

    settings = load_settings(database_url=database_url)
    typer.echo(status_json(settings) if json else render_status(settings))


@app.command("config")
def config_command(database_url: DatabaseUrl = None) -> None:
    """Every setting in effect and where it came from (environment, .env, default); passwords masked."""
    from job.config import settings_in_effect

    options = {"database_url"} if database_url else set()
    rows = settings_in_effect(load_settings(database_url=database_url), options)
    width = max(len(name) for name, _, _ in rows)
    for name, value, origin in rows:
        typer.echo(f"{name:<{width}}  {value}  ({origin})")


def _cycle_settings(
    database_url: str | None,
    tickers: str | None,
    source: str | None,
    csv: Path | None,
    workers: int | None,
    dask_address: str | None,
) -> Settings:
    """The settings of a command that runs the cycle, its options over the environment."""
    return load_settings(
        database_url=database_url, tickers=tickers, source=source, csv_path=csv, workers=workers,
        dask_address=dask_address,
    )  # fmt: skip


def _cycle(settings: Settings, **callbacks: Any) -> Any:
    from job.ingest.sources import source_for
    from job.pipeline import Cycle

    return Cycle(settings, source_for(settings), **callbacks)


@app.command()
def run(
    tickers: Tickers = None,
    source: SourceName = None,
    csv: CsvPath = None,
    as_of: AsOf = None,
    wait: Wait = False,
    workers: Workers = None,
    dask_address: DaskAddress = None,
    database_url: DatabaseUrl = None,
    json: Json = False,
) -> None:
    """One nightly cycle: ingest, evaluate, update or retrain, forecast the next session.

    Sessions missed since the last run are caught up in order. Exit code 1 if any ticker failed.
    """
    settings = _cycle_settings(database_url, tickers, source, csv, workers, dask_address)
    from job.console import report_json, run_lines

    report = _cycle(settings).nightly(settings.tickers, as_of=parse_date("--as-of", as_of), wait=wait)
    typer.echo(report_json(report) if json else "\n".join(run_lines(report)))
    if report.status != "succeeded":
        raise typer.Exit(1)


@app.command()
def backfill(
    start: dated("--start", "First target session to replay."),
    end: dated("--end", "Last as-of session (default: the last stored).") = None,
    tickers: Tickers = None,
    source: SourceName = None,
    csv: CsvPath = None,
    wait: Wait = False,
    workers: Workers = None,
    dask_address: DaskAddress = None,
    database_url: DatabaseUrl = None,
    json: Json = False,
) -> None:
    """Replay past sessions walk-forward, exactly as the nightly job would have run them.

    The first model is trained on sessions strictly before --start. Interrupt it any time:
    the same command resumes after the last stored session and a finished range is left as is.
    """
    from job.console import print_summary, progress, report_json

    settings = _cycle_settings(database_url, tickers, source, csv, workers, dask_address)
    first, last = parse_range(start, end)
    assert first is not None  # --start is required
    with progress(len(settings.tickers)) as (on_plan, on_session):
        cycle = _cycle(settings, on_plan=on_plan, on_session=on_session)
        report = cycle.backfill(settings.tickers, start=first, as_of=last, wait=wait)
    if json:
        typer.echo(report_json(report))
    else:
        print_summary(report)
    if report.status != "succeeded":
        raise typer.Exit(1)


@app.command("train")
def train_command(
    tickers: Tickers = None,
    as_of: dated("--as-of", "Train on sessions up to this date (default: all stored).") = None,
    wait: Wait = False,
    workers: Workers = None,
    dask_address: DaskAddress = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Retrain each ticker's model from scratch on stored prices and store it as a new version."""
    settings = load_settings(
        database_url=database_url, tickers=tickers, workers=workers, dask_address=dask_address
    )
    from job.console import train_lines

    report = _cycle(settings).train(settings.tickers, as_of=parse_date("--as-of", as_of), wait=wait)
    for line in train_lines(report):
        typer.echo(line)
    if report.status != "succeeded":
        raise typer.Exit(1)


@app.command()
def report(
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNG charts and index.html.")],
    tickers: tickers_option("Comma-separated symbols (default: every ticker with forecasts).") = None,
    start: dated("--start", "First target session (default: the first).") = None,
    end: dated("--end", "Last target session (default: the last).") = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Charts per ticker (forecasts vs actual, rolling RMSE, error histogram) and one index.html."""
    from job.report import render_report

    first, last = parse_range(start, end)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file: give the folder for the charts and index.html")
    settings = load_settings(database_url=database_url, tickers=tickers)
    index, drawn = render_report(settings, settings.tickers if tickers else None, first, last, out)
    typer.echo(f"report for {', '.join(drawn)}: {index}")


@app.command()
def schedule(
    run_now: Annotated[bool, typer.Option("--run-now", help="Run one cycle at start.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the nightly cycle on the configured cron schedule until SIGTERM or SIGINT."""
    from job.db.migrate import require_current
    from job.scheduler import NightlyService

    settings = load_settings(database_url=database_url)
    require_current(settings.database_url)
    NightlyService(settings).serve(run_now=run_now)


@app.command()
def export(
    ticker: Annotated[str, typer.Option("--ticker", help="The ticker whose model to export.")],
    out: Annotated[Path, typer.Option("--out", help="The .keras file to write.")],
    version: Annotated[
        int | None,
        typer.Option("--version", help="A model_versions id (default: the newest).", show_default=False),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write a stored model as a .keras file: Keras' own format, `keras.saving.load_model` opens it."""
    from job.db.migrate import require_current
    from job.forecast.model.stored import export_keras
    from job.ingest.tickers import normalize_ticker

    if out.suffix != ".keras":
        raise UsageError(f"--out {out}: a Keras model file must end in .keras")
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder: give the .keras file to write")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: the folder {out.parent} does not exist")
    settings = load_settings(database_url=database_url)
    require_current(settings.database_url)
    symbol = normalize_ticker(ticker)
    version_id = export_keras(settings.database_url, symbol, version, out)
    typer.echo(
        f"{symbol}: model version {version_id} written to {out} (how to apply it: {out.with_suffix('.json')})"
    )


@app.command()
def health(
    max_age: Annotated[
        int, typer.Option("--max-age", help="Seconds after which the heartbeat counts as stale.")
    ] = 300,
) -> None:
    """Exit 0 when the scheduler's heartbeat is fresh (for container healthchecks)."""
    from job.scheduler import heartbeat_age
    from job.support.clock import utcnow

    settings = load_settings()
    age = heartbeat_age(settings.heartbeat_file, utcnow())
    if age > max_age:
        raise NightcastError(f"heartbeat {settings.heartbeat_file} is {age:.0f}s old (max {max_age}s)")
    typer.echo(f"healthy: heartbeat {age:.0f}s old")


@app.command()
def ingest(
    tickers: Tickers = None,
    source: SourceName = None,
    csv: CsvPath = None,
    start: dated("--start", "First date to fetch (default: the recent overlap).") = None,
    end: dated("--end", "Last date to store (default: the last closed session).") = None,
    database_url: DatabaseUrl = None,
    wait: Wait = False,
    accept: Annotated[
        list[str] | None,
        typer.Option(
            "--accept",
            metavar="YYYY-MM-DD",
            help="A flagged date whose step is real: store it anyway. Repeatable.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Download, validate and store closed sessions; one line per ticker, exit 1 if any failed."""
    first, last = parse_range(start, end)
    accepted = {parse_date("--accept", day) for day in accept or ()}
    settings = load_settings(database_url=database_url, tickers=tickers, source=source, csv_path=csv)
    outcomes = _cycle(settings).ingest(
        settings.tickers, start=first, end=last, wait=wait, accept=accepted - {None}
    )
    for outcome in outcomes:
        if outcome.result is not None:
            typer.echo(outcome.result.summary())
        else:
            typer.echo(f"failed: {outcome.error}", err=True)
    if any(not outcome.ok for outcome in outcomes):
        raise typer.Exit(1)


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
    except Exception as exc:
        if verbose:  # exception text can quote a connection string: scrubbed like the rest
            typer.echo(redact("".join(traceback.format_exception(exc))), err=True, nl=False)
        expected = isinstance(exc, NightcastError | DBAPIError)
        hint = "" if expected or verbose else " (run with --verbose for details)"
        typer.echo(f"error: {one_line(exc)}{hint}", err=True)
        return 2 if isinstance(exc, UsageError) else 1
    return 0
