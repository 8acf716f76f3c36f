"""`nightcast backfill`: the nightly cycle replayed over past sessions, with progress.

It is the same `Cycle` the scheduler runs, given a start date: every as-of session from
the one before `--start` is replayed in order, each committed on its own, so an interrupted
backfill resumes where it stopped and a finished one is left unchanged.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import date

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from job.config import Settings
from job.db import get_engine
from job.evaluate import summarize
from job.pipeline import Cycle, CycleReport
from job.sources import source_for

log = logging.getLogger(__name__)

LOG_EVERY_SECONDS = 30.0


class _PlainProgress:
    """Periodic log lines for logs and pipes, where a redrawn bar would be noise."""

    def __init__(self) -> None:
        self.total = self.done = 0
        self.started = self.last = time.monotonic()

    def plan(self, ticker: str, sessions: int) -> None:
        self.total += sessions
        log.info("%s: %d sessions to replay", ticker, sessions)

    def advance(self, ticker: str, as_of: date) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.last >= LOG_EVERY_SECONDS or self.done == self.total:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            eta = (self.total - self.done) / rate if rate else float("nan")
            log.info(
                "%d/%d sessions (%s as of %s), %.1f sessions/s, ETA %.0fs",
                self.done,
                self.total,
                ticker,
                as_of,
                rate,
                eta,
            )


def run_backfill(settings: Settings, *, start: date, end: date | None, wait: bool = False) -> CycleReport:
    """Replay [start, end] for the configured tickers and print a summary table per ticker."""
    source = source_for(settings)
    console = Console(stderr=True)
    if console.is_terminal:
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("sessions"),
            TimeRemainingColumn(),
            console=console,
        )
        task = progress.add_task("backfill", total=0)

        def plan(ticker: str, sessions: int) -> None:
            progress.update(task, total=(progress.tasks[0].total or 0) + sessions)

        def advance(ticker: str, as_of: date) -> None:
            state = progress.tasks[0]
            rate = (state.completed + 1) / max(state.elapsed or 0.0, 1e-9)
            progress.update(task, advance=1, description=f"{ticker} {as_of} {rate:.1f}/s")

        cycle = Cycle(settings, source, on_plan=plan, on_session=advance)
        with progress:
            report = cycle.run(settings.tickers, kind="backfill", start=start, as_of=end, wait=wait)
    else:
        plain = _PlainProgress()
        cycle = Cycle(settings, source, on_plan=plain.plan, on_session=plain.advance)
        report = cycle.run(settings.tickers, kind="backfill", start=start, as_of=end, wait=wait)
    print_summary(settings, report, start, end)
    return report


def print_summary(settings: Settings, report: CycleReport, start: date, end: date | None) -> None:
    """Per ticker: how the LSTM did against naive over the replayed target sessions."""
    table = Table(title=f"backfill run #{report.run_id}: {report.status}")
    for column in (
        "ticker",
        "sessions",
        "RMSE lstm",
        "RMSE naive",
        "ratio",
        "MAE lstm",
        "MAE naive",
        "direction",
    ):
        table.add_column(column, justify="left" if column == "ticker" else "right")
    with get_engine(settings.database_url).connect() as conn:
        for ticker_report in report.tickers:
            summary = summarize(conn, ticker_report.ticker, start, end or date.max)
            if summary is None:
                table.add_row(ticker_report.ticker, "0", *["-"] * 6)
                continue
            table.add_row(
                summary.ticker,
                str(summary.sessions),
                f"{summary.lstm.rmse:.4f}",
                f"{summary.naive.rmse:.4f}",
                f"{summary.rmse_ratio:.4f}",
                f"{summary.lstm.mae:.4f}",
                f"{summary.naive.mae:.4f}",
                "-"
                if summary.directional_accuracy is None
                else f"{summary.directional_accuracy:.1%} of {summary.calls}",
            )
    Console(file=sys.stdout, width=120).print(table)
    for ticker_report in report.failed:
        Console(stderr=True).print(f"{ticker_report.ticker}: failed: {ticker_report.error}", markup=False)
