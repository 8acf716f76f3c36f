"""What the terminal shows of a long cycle: a progress bar (or periodic log lines when the
output is not a terminal) and the backfill's summary table."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from job.pipeline import CycleReport, PlanCallback, SessionCallback

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


@contextmanager
def progress() -> Iterator[tuple[PlanCallback, SessionCallback]]:
    """(on_plan, on_session) callbacks for a cycle: a bar on a terminal, log lines otherwise."""
    console = Console(stderr=True)
    if not console.is_terminal:
        plain = _PlainProgress()
        yield plain.plan, plain.advance
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("sessions"),
        TimeRemainingColumn(),
        console=console,
    )
    task = bar.add_task("backfill", total=0)

    def plan(ticker: str, sessions: int) -> None:
        bar.update(task, total=(bar.tasks[0].total or 0) + sessions)

    def advance(ticker: str, as_of: date) -> None:
        state = bar.tasks[0]
        rate = (state.completed + 1) / max(state.elapsed or 0.0, 1e-9)
        bar.update(task, advance=1, description=f"{ticker} {as_of} {rate:.1f}/s")

    with bar:
        yield plan, advance


def print_summary(report: CycleReport) -> None:
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
    for ticker, summary in report.summaries.items():
        if summary is None:
            table.add_row(ticker, "0", *["-"] * 6)
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
