"""What the terminal shows of a cycle: a progress bar (or periodic log lines when the output
is not a terminal), a line per ticker, and the backfill's summary table."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import date

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from job.forecast.evaluate import RangeSummary
from job.forecast.models import GUARDED
from job.forecast.scores import rmse_ratio
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
def progress(tickers: int) -> Iterator[tuple[PlanCallback, SessionCallback]]:
    """(on_plan, on_session) callbacks for a cycle over `tickers` tickers: a bar on a
    terminal, log lines otherwise. The bar's first row counts tickers planned, a total known
    from the start; the second, sessions replayed, whose total grows as each ticker is planned."""
    console = Console(stderr=True)
    if not console.is_terminal:
        plain = _PlainProgress()
        yield plain.plan, plain.advance
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeRemainingColumn(),
        console=console,
    )
    planned = bar.add_task("ingest and plan", total=tickers, unit="tickers")
    replayed = bar.add_task("replay", total=None, unit="sessions")

    def plan(ticker: str, sessions: int) -> None:
        bar.update(planned, advance=1, description=f"planned {ticker}")
        bar.update(replayed, total=(bar.tasks[replayed].total or 0) + sessions)

    def advance(ticker: str, as_of: date) -> None:
        state = bar.tasks[replayed]
        rate = (state.completed + 1) / max(state.elapsed or 0.0, 1e-9)
        bar.update(replayed, advance=1, description=f"{ticker} {as_of} {rate:.1f}/s")

    with bar:
        yield plan, advance


def print_summary(report: CycleReport) -> None:
    """Per ticker: how the LSTM did against naive over the replayed target sessions; a table
    on a terminal, tab-separated lines with a header row into a pipe or a file."""
    rows = [summary_cells(ticker, summary) for ticker, summary in report.summaries.items()]
    if sys.stdout.isatty():
        table = Table(title=f"backfill run #{report.run_id}: {report.status}")
        for column in SUMMARY_COLUMNS:
            table.add_column(column, justify="left" if column == "ticker" else "right")
        for row in rows:
            table.add_row(*row)
        Console(file=sys.stdout).print(table)
    else:
        print(f"backfill run #{report.run_id}: {report.status}")
        print("\n".join("\t".join(row) for row in [list(SUMMARY_COLUMNS), *rows]))
    for summary in report.summaries.values():
        if summary is not None and summary.calls == 0:
            print(f"{summary.ticker}: the stored LSTM forecast is the naive one (the last close) on every "
                  f"replayed session: {GUARDED}")  # fmt: skip


SUMMARY_COLUMNS = (
    "ticker", "sessions", "RMSE lstm", "RMSE naive", "ratio", "DM p", "hit rate", "up rate",
    "cover 80%", "cover 95%", "Winkler95 ratio", "network scale",
)  # fmt: skip


def summary_cells(ticker: str, summary: RangeSummary | None) -> list[str]:
    """One table row: accuracy next to naive, whether the difference is real (Diebold-Mariano
    p), direction against the always-up baseline, and how the LSTM's intervals held."""
    if summary is None:
        return [ticker, "0", *["-"] * (len(SUMMARY_COLUMNS) - 2)]
    lstm, naive = summary.lstm, summary.naive

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    winkler = lstm["winkler_95"] / naive["winkler_95"] if lstm["winkler_95"] and naive["winkler_95"] else None
    return [
        ticker,
        str(summary.sessions),
        f"{lstm['rmse']:.4f}",
        f"{naive['rmse']:.4f}",
        f"{summary.rmse_ratio:.4f}",
        "-" if lstm["dm_pvalue"] is None else f"{lstm['dm_pvalue']:.3f}",
        "-" if lstm["hit_rate"] is None else f"{lstm['hit_rate']:.1%} of {summary.calls}",
        share(lstm["up_rate"]),
        share(lstm["coverage_80"]),
        share(lstm["coverage_95"]),
        "-" if winkler is None else f"{winkler:.4f}",
        f"{summary.network_scaled / summary.sessions:.0%}",
    ]


def run_lines(report: CycleReport) -> list[str]:
    """`nightcast run`: a line per ticker that went through (the others were logged), then the run."""
    lines = []
    for t in report.tickers:
        if t.status == "ok":
            span = f"as of {t.first_as_of}..{t.last_as_of}" if t.sessions else "already up to date"
            lines.append(
                f"{t.ticker}: {t.new_rows} new prices, {t.sessions} sessions forecast ({span}), "
                f"{t.retrains} retrains, {t.updates} updates" + (", history revised" if t.revised else "")
            )
            if t.target is not None and t.lstm_close is not None:
                band = "" if t.lower_95 is None else f" [95%: {t.lower_95:.2f}..{t.upper_95:.2f}]"
                guarded = " (lstm = naive: guarded)" if t.lstm_close == t.naive_close else ""
                lines.append(
                    f"{t.ticker}: forecast for {t.target}: lstm {t.lstm_close:.2f}{band}, "
                    f"naive {t.naive_close:.2f}{guarded}"
                )
    lines.append(f"run #{report.run_id} {report.status}")
    if any(t.sessions for t in report.tickers):
        lines.append(
            "next: `nightcast status`, `nightcast report --out report`, or SQL on latest_predictions"
        )
    return lines


def train_lines(report: CycleReport) -> list[str]:
    """`nightcast train`: per trained ticker its version, range, epochs and validation skill."""
    lines = []
    for t in report.tickers:
        if t.status != "ok":
            continue
        ratio = rmse_ratio(t.val_rmse, t.val_naive_rmse)
        skill = (
            f"validation RMSE {t.val_rmse:.4f} vs naive {t.val_naive_rmse:.4f} (ratio {ratio:.3f})"
            if not math.isnan(ratio)
            else "no validation tail"
        )
        lines.append(
            f"{t.ticker}: version {t.version_id}, trained on {t.trained_from}..{t.last_as_of}, "
            f"{t.epochs} epochs, {skill}"
        )
    return lines


def report_json(report: CycleReport) -> str:
    """`--json` of `run` and `backfill`: {"run_id", "status", "tickers": [one object per
    ticker, the fields of `job_runs.details`], "summaries": {ticker: range figures or null}}."""
    return json.dumps(
        {
            "run_id": report.run_id,
            "status": report.status,
            "tickers": [asdict(t) for t in report.tickers],
            "summaries": {
                ticker: None if summary is None else _summary_json(summary)
                for ticker, summary in report.summaries.items()
            },
        },
        indent=2,
        default=str,
        allow_nan=False,
    )


def _summary_json(summary: RangeSummary) -> dict[str, object]:
    return {
        "sessions": summary.sessions,
        "rmse_ratio": summary.rmse_ratio if math.isfinite(summary.rmse_ratio) else None,  # flat prices
        "calls": summary.calls,
        **summary.models,  # every model's figures under its name
    }
