"""A cycle in three stages, data flowing one way: ingest -> compute -> persist.

1. Ingest every claimed ticker through the one ingest path (`job.ingest.ingest_many`, what
   `nightcast ingest` runs), each ticker committed on its own: prices survive a failing
   model, and no download happens inside a transaction.
2. Compute: per ticker, `job.plan` reads what its sessions need into a task of arrays, and
   an executor (this process, or Dask workers) replays it (`job.compute`).
3. Persist: each as-of session's results commit on their own, a Dask chunk's sessions
   together (`job.persist`), on the connection holding the ticker's claim (`job.claims`).

The nightly run, its catch-up of missed sessions, `backfill` and `train` are this one cycle
over different session lists; each command calls one method here and renders the report.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import Literal

from job.calendar import Calendars
from job.claims import Claims
from job.compute import Step, Task
from job.config import Settings
from job.db.migrate import require_current
from job.errors import ClaimLost, NightcastError, TickerError, clip, one_line
from job.evaluate import RangeSummary, summarize
from job.executors import DaskExecutor, InProcess
from job.ingest import IngestOutcome, ingest_many
from job.persist import save_steps
from job.plan import plan
from job.runs import finish_run, start_run, utcnow
from job.sources import PriceSource

log = logging.getLogger(__name__)

Kind = Literal["run", "backfill", "train"]
SessionCallback = Callable[[str, dt.date], None]
PlanCallback = Callable[[str, int], None]


@dataclass
class TickerReport:
    """What one ticker's part of a cycle did; stored in `job_runs.details`."""

    ticker: str
    status: Literal["ok", "failed", "flagged", "stopped", "busy"] = "ok"
    new_rows: int = 0
    revised: bool = False
    first_as_of: str | None = None
    last_as_of: str | None = None
    sessions: int = 0
    retrains: int = 0
    updates: int = 0
    version_id: int | None = None  # the last version stored
    trained_from: str | None = None  # ...its training range, epochs and validation figures
    epochs: int | None = None
    val_rmse: float | None = None
    val_naive_rmse: float | None = None
    error: str | None = None

    def add(self, step: Step, version_id: int) -> None:
        self.sessions += 1
        self.first_as_of = self.first_as_of or step.as_of.isoformat()
        self.last_as_of = step.as_of.isoformat()
        self.retrains += step.kind == "retrain"
        self.updates += step.kind == "update"
        self.version_id, self.trained_from, self.epochs = (
            version_id,
            step.trained_from.isoformat(),
            step.fit.epochs,
        )
        self.val_rmse, self.val_naive_rmse = step.fit.val_rmse, step.fit.val_naive_rmse

    def fail(
        self,
        status: Literal["failed", "flagged", "stopped", "busy"],
        error: str,
        exc: BaseException | None = None,
    ) -> None:
        """Record why the ticker is not done, and log it: the one line people see for it
        (`exc`, an unforeseen error, adds its traceback with --verbose and in the service log)."""
        self.status, self.error = status, clip(error)
        level = logging.ERROR if status in ("failed", "flagged") else logging.WARNING
        log.log(level, "%s", error, exc_info=exc)


@dataclass
class CycleReport:
    run_id: int
    status: str
    tickers: list[TickerReport] = field(default_factory=list)
    summaries: dict[str, RangeSummary | None] = field(default_factory=dict)  # backfill: its range

    @property
    def failed(self) -> list[TickerReport]:
        return [t for t in self.tickers if t.status != "ok"]


def executor_for(settings: Settings) -> AbstractContextManager[InProcess | DaskExecutor]:
    """In-process by default; Dask when `workers` or `dask_address` is set."""
    if settings.dask_address:
        return DaskExecutor(address=settings.dask_address)
    if settings.workers:
        return DaskExecutor(workers=settings.workers)
    return InProcess()


class Cycle:
    """Cycles against one database with one price source."""

    def __init__(
        self,
        settings: Settings,
        source: PriceSource,
        *,
        stop: threading.Event | None = None,
        on_session: SessionCallback | None = None,
        on_plan: PlanCallback | None = None,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.source = source
        self.calendars: Calendars = settings.exchanges
        self.stop = stop or threading.Event()
        self.on_session = on_session or (lambda ticker, as_of: None)
        self.on_plan = on_plan or (lambda ticker, sessions: None)
        self.now = now

    def run(
        self,
        tickers: Sequence[str],
        *,
        kind: Kind = "run",
        as_of: dt.date | None = None,
        start: dt.date | None = None,
        wait: bool = False,
    ) -> CycleReport:
        """One logged cycle over the tickers this process can claim (all of them, waiting for
        those another cycle holds, with `wait`). `start` (backfill) replays every session
        from there; kind "train" retrains each ticker once on its stored prices."""
        url = self.settings.database_url
        require_current(url)
        reports = {t: TickerReport(t) for t in tickers}
        with Claims(url) as claims:
            claimed = claims.take(tickers, wait=False)
            run_id = start_run(claims, kind, list(tickers))
            try:
                with executor_for(self.settings) as executor:
                    work = _Work(self, claims, executor, run_id, kind, as_of, start, reports)
                    work.tickers(claimed)
                    for ticker in (t for t in tickers if t not in claimed):
                        if wait and not self.stop.is_set() and claims.take([ticker], wait=True):
                            work.tickers([ticker])
                        elif self.stop.is_set():
                            reports[ticker].fail("stopped", f"{ticker}: stop requested")
                        else:
                            reports[ticker].fail("busy", claims.busy_message(ticker))
            except BaseException as exc:
                finish_run(url, run_id, "failed", _details(reports), f"interrupted: {one_line(exc)}")
                raise
        status = _overall_status(list(reports.values()))
        errors = "; ".join(r.error for r in reports.values() if r.error)
        finish_run(url, run_id, status, _details(reports), errors or None)
        report = CycleReport(run_id, status, list(reports.values()))
        if kind == "backfill" and start is not None:
            report.summaries = self._summaries(tickers, start, as_of)
        return report

    def ingest(
        self,
        tickers: Sequence[str],
        *,
        start: dt.date | None,
        end: dt.date | None,
        wait: bool = False,
        accept: Collection[dt.date] = (),
    ) -> list[IngestOutcome]:
        """`nightcast ingest`: the cycle's first stage alone, on the tickers it can claim;
        `accept`: flagged dates a person confirmed (job.anomalies)."""
        require_current(self.settings.database_url)
        settings = self.settings
        with Claims(settings.database_url) as claims:
            claimed = claims.take(tickers, wait=wait)
            outcomes = {
                o.ticker: o
                for o in ingest_many(
                    claims.conn, claimed, self.source, self.calendars, history_start=settings.history_start,
                    start=start, end=end, now=self.now(), verify=claims.verify,
                    metric_windows=settings.metric_windows, accept=accept,
                )
            }  # fmt: skip
        return [outcomes.get(t) or IngestOutcome(t, error=claims.busy_message(t)) for t in tickers]

    def _summaries(
        self, tickers: Sequence[str], start: dt.date, end: dt.date | None
    ) -> dict[str, RangeSummary | None]:
        from job.db import get_engine

        with get_engine(self.settings.database_url).connect() as conn:
            return {t: summarize(conn, t, start, end or dt.date.max) for t in tickers}


@dataclass
class _Work:
    """The three stages for a set of claimed tickers, reporting into `reports`."""

    cycle: Cycle
    claims: Claims
    executor: InProcess | DaskExecutor
    run_id: int
    kind: Kind
    as_of: dt.date | None  # None: each ticker's last closed session
    start: dt.date | None
    reports: dict[str, TickerReport]
    parents: dict[str, int | None] = field(default_factory=dict)  # the version each next one updates
    first: dict[str, dt.date] = field(default_factory=dict)  # the first session planned per ticker
    last: dict[str, dt.date] = field(default_factory=dict)  # the last session planned per ticker

    def tickers(self, tickers: list[str]) -> None:
        ready = tickers if self.kind == "train" else self._ingest(tickers)
        for result in self.executor.run(self._plans(ready)):
            ticker = result.task.ticker
            report = self.reports[ticker]
            if report.status != "ok":  # failed earlier: storing later sessions would leave a hole
                if result.done:
                    self.claims.release(ticker)
                continue
            try:
                if result.steps:
                    if self.cycle.stop.is_set():
                        raise _Stopped(f"{ticker}: stopped at {result.steps[0].as_of}")
                    self._persist(ticker, result.steps)
                if result.error is not None:
                    raise result.error
            except ClaimLost:
                raise  # the connection is gone: nothing more can be written for any ticker
            except _Stopped as exc:
                report.fail("stopped", str(exc))
                break
            except Exception as exc:
                self._failed(report, exc)
                if not result.done:
                    self.executor.cancel(ticker)  # its later sessions could not be stored
            if result.done:
                self.claims.release(ticker)
        if self.cycle.stop.is_set():  # tickers the stop left untouched or unfinished
            for ticker in ready:
                report = self.reports[ticker]
                planned = self.last.get(ticker)
                if report.status == "ok" and planned and report.last_as_of != planned.isoformat():
                    done = f" after {report.last_as_of}" if report.last_as_of else ""
                    report.fail("stopped", f"{ticker}: stop requested{done}")
                elif report.status == "ok" and not report.sessions and ticker not in self.last:
                    report.fail("stopped", f"{ticker}: stop requested")

    def _ingest(self, tickers: list[str]) -> list[str]:
        settings = self.cycle.settings
        outcomes = ingest_many(
            self.claims.conn, tickers, self.cycle.source, self.cycle.calendars,
            history_start=settings.history_start, end=self.as_of, now=self.cycle.now(),
            verify=self.claims.verify, metric_windows=settings.metric_windows,
        )  # fmt: skip
        ready = []
        for outcome in outcomes:
            report = self.reports[outcome.ticker]
            if outcome.result is None:
                status = "flagged" if outcome.flagged else "failed"
                report.fail(status, outcome.error or f"{outcome.ticker}: ingest failed")
                continue
            report.new_rows, report.revised = outcome.result.new_rows, outcome.result.revised is not None
            for warning in outcome.result.warnings:
                log.warning("%s", warning)
            ready.append(outcome.ticker)
        return ready

    def _plans(self, tickers: list[str]) -> Iterator[Task]:
        """Each ticker's task, read just before it is handed to the executor."""
        settings = self.cycle.settings
        for ticker in tickers:
            if self.cycle.stop.is_set():
                self.reports[ticker].fail("stopped", f"{ticker}: stop requested")
                continue
            try:
                calendar = self.cycle.calendars(ticker)
                horizon = self.as_of or calendar.last_closed_session(self.cycle.now())
                planned = plan(
                    self.claims.conn, ticker, settings, calendar, horizon=horizon,
                    start=self.start, retrain=self.kind == "train",
                )  # fmt: skip
            except Exception as exc:
                self._failed(self.reports[ticker], exc)
                continue
            finally:
                self.claims.conn.rollback()
            self.cycle.on_plan(ticker, 0 if planned is None else len(planned.task.sessions))
            if planned is not None:
                self.parents[ticker] = planned.parent_id
                self.first[ticker] = planned.task.sessions[0].astype(dt.date)
                self.last[ticker] = planned.task.sessions[-1].astype(dt.date)
                yield planned.task

    def _persist(self, ticker: str, steps: list[Step]) -> None:
        last = steps[-1].as_of == self.last[ticker]
        ids = save_steps(
            self.claims, ticker, steps, parent_id=self.parents[ticker], run_id=self.run_id,
            settings=self.cycle.settings, forecasts=self.kind != "train",
            run_first=self.first[ticker] if last else None,
        )  # fmt: skip
        self.parents[ticker] = ids[-1]
        for step, version_id in zip(steps, ids, strict=True):
            if step.warning:
                log.warning("%s", step.warning)
            self.reports[ticker].add(step, version_id)
            log.debug("%s as of %s: %s (%s) -> %s", ticker, step.as_of, step.kind, step.reason, step.target)
            self.cycle.on_session(ticker, step.as_of)

    @staticmethod
    def _failed(report: TickerReport, exc: BaseException) -> None:
        """One bad ticker never stops the others; an unforeseen error keeps its traceback in
        the log (shown with --verbose, and always in the scheduler's log)."""
        if isinstance(exc, TickerError):
            report.fail("failed", one_line(exc))
        else:
            report.fail("failed", f"{report.ticker}: {one_line(exc)}", exc)


class _Stopped(NightcastError):
    """A stop was requested (SIGTERM, Ctrl-C in the service) between two sessions."""


def _overall_status(reports: list[TickerReport]) -> str:
    ok = sum(r.status == "ok" for r in reports)
    if ok == len(reports):
        return "succeeded"
    return "failed" if ok == 0 else "partial"


def _details(reports: dict[str, TickerReport]) -> dict[str, dict]:
    return {ticker: asdict(report) for ticker, report in reports.items()}
