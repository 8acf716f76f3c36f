"""A cycle in three stages, data flowing one way: ingest -> compute -> persist.

1. Ingest every claimed ticker through the one ingest path (`job.ingest.run.ingest_many`, what
   `nightcast ingest` runs), each ticker committed on its own: prices survive a failing
   model, and no download happens inside a transaction.
2. Compute: per ticker, `job.forecast.plan` reads what its sessions need into a task of arrays, and
   an executor (this process, or Dask workers) replays it (`job.forecast.compute`).
3. Persist: each as-of session's results commit on their own, a Dask chunk's sessions
   together (`job.persist.steps`), on the connection holding the ticker's claim (`job.db.claims`).

The nightly run, its catch-up of missed sessions, `backfill` and `train` are this one cycle
over different session lists; each command calls one method here and renders the report.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

from job.config import Settings
from job.db import get_engine
from job.db.claims import Claims
from job.db.migrate import require_current
from job.db.runs import finish_run, start_run
from job.errors import NightcastError, UsageError, clip, one_line, ticker_failure, unforeseen
from job.executors import Executor, executor_for
from job.forecast.compute import Step, Task
from job.forecast.evaluate import RangeSummary, summarize
from job.forecast.models import PRIMARY, REFERENCE
from job.forecast.plan import Plan, plan
from job.forecast.selection import Selection
from job.ingest.run import IngestOutcome, ingest_many
from job.ingest.sources import PriceSource
from job.persist.steps import revision_follower, save_steps
from job.support.calendar import Calendars
from job.support.clock import utcnow
from job.support.redact import mask_url, redact

log = logging.getLogger(__name__)

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
    target: str | None = None  # the last forecast stored: its session, both points, the 95% range
    lstm_close: float | None = None
    naive_close: float | None = None
    lower_95: float | None = None
    upper_95: float | None = None
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
        if step.forecasts:
            lstm, naive = step.forecasts[PRIMARY].row(), step.forecasts[REFERENCE].row()
            self.target = step.target.isoformat()
            self.lstm_close, self.naive_close = lstm["predicted_close"], naive["predicted_close"]
            self.lower_95, self.upper_95 = lstm["lower_95"], lstm["upper_95"]

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

    def nightly(
        self, tickers: Sequence[str], *, as_of: dt.date | None = None, wait: bool = False
    ) -> CycleReport:
        """`nightcast run`: ingest, then forecast every session missed since the last run."""
        return self.run(tickers, Selection.nightly(as_of), wait=wait)

    def backfill(
        self, tickers: Sequence[str], *, start: dt.date, as_of: dt.date | None = None, wait: bool = False
    ) -> CycleReport:
        """`nightcast backfill`: replay from `start` walk-forward; the report sums the range up."""
        report = self.run(tickers, Selection.backfill(start, as_of), wait=wait)
        with get_engine(self.settings.database_url).connect() as conn:
            report.summaries = {t: summarize(conn, t, start, as_of or dt.date.max) for t in tickers}
        return report

    def train(
        self, tickers: Sequence[str], *, as_of: dt.date | None = None, wait: bool = False
    ) -> CycleReport:
        """`nightcast train`: one from-scratch training per ticker on its stored prices."""
        return self.run(tickers, Selection.train(as_of), wait=wait)

    def run(self, tickers: Sequence[str], selection: Selection, *, wait: bool = False) -> CycleReport:
        """One logged cycle over the tickers this process can claim (all of them, waiting for
        those another cycle holds, with `wait`)."""
        url = self.settings.database_url
        require_current(url)
        states = {t: _TickerState(TickerReport(t)) for t in tickers}
        reports = {t: state.report for t, state in states.items()}
        with Claims(url) as claims:
            claimed = claims.take(tickers, wait=False)
            run_id = start_run(claims, selection.name, list(tickers))
            try:
                with executor_for(self.settings) as executor:
                    work = _Run(claims, executor, run_id, selection, states)
                    self._stages(work, claimed)
                    for ticker in (t for t in tickers if t not in claimed):
                        if wait and not self.stop.is_set() and claims.take([ticker], wait=True):
                            self._stages(work, [ticker])
                        elif self.stop.is_set():
                            reports[ticker].fail("stopped", f"{ticker}: stop requested")
                        else:
                            reports[ticker].fail("busy", self._busy(ticker))
            except BaseException as exc:
                finish_run(url, run_id, "failed", _details(reports), redact(f"interrupted: {one_line(exc)}"))
                raise
        status = _overall_status(list(reports.values()))
        errors = "; ".join(r.error for r in reports.values() if r.error)
        finish_run(url, run_id, status, _details(reports), redact(errors) if errors else None)
        return CycleReport(run_id, status, list(reports.values()))

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
        `accept`: flagged dates a person confirmed (job.ingest.anomalies), for one ticker only."""
        if accept and len(tickers) != 1:
            raise UsageError(
                f"--accept: name the one ticker whose step is real (--tickers; got {len(tickers)})"
            )
        require_current(self.settings.database_url)
        with Claims(self.settings.database_url) as claims:
            claimed = claims.take(tickers, wait=wait)
            outcomes = {
                o.ticker: o for o in self._ingest(claims, claimed, start=start, end=end, accept=accept)
            }
        return [outcomes.get(t) or IngestOutcome(t, error=self._busy(t)) for t in tickers]

    def _ingest(
        self,
        claims: Claims,
        tickers: Sequence[str],
        *,
        start: dt.date | None = None,
        end: dt.date | None,
        accept: Collection[dt.date] = (),
    ) -> list[IngestOutcome]:
        settings = self.settings
        return ingest_many(
            claims.conn, tickers, self.source, self.calendars, history_start=settings.history_start,
            start=start, end=end, now=self.now(), verify=claims.verify,
            follow=revision_follower(settings.metric_windows), accept=accept,
        )  # fmt: skip

    def _busy(self, ticker: str) -> str:
        where = mask_url(self.settings.database_url)
        return f"{ticker}: another nightcast cycle on {where} is working on it; try later or pass --wait"

    # --- the stages, for a set of claimed tickers ------------------------------------------

    def _stages(self, work: _Run, tickers: list[str]) -> None:
        ready = self._ingested(work, tickers) if work.selection.ingest else tickers
        for result in work.executor.run(self._plans(work, ready)):
            ticker = result.task.ticker
            state = work.states[ticker]
            if state.report.status != "ok":  # failed earlier: storing later sessions would leave a hole
                if result.done:
                    work.claims.release(ticker)
                continue
            try:
                if result.steps:
                    if self.stop.is_set():
                        raise _Stopped(f"{ticker}: stopped at {result.steps[0].as_of}")
                    self._persist(work, state, result.steps)
                if result.error is not None:
                    raise result.error
            except _Stopped as exc:
                state.report.fail("stopped", str(exc))
                break
            except Exception as exc:
                state.failed(exc, work.claims)
                if not result.done:
                    work.executor.cancel(ticker)  # its later sessions could not be stored
            if result.done:
                work.claims.release(ticker)
        if self.stop.is_set():  # tickers the stop left untouched or unfinished
            for ticker in ready:
                work.states[ticker].stopped()

    def _ingested(self, work: _Run, tickers: list[str]) -> list[str]:
        """The tickers whose prices are in: the others' reports say why not."""
        ready = []
        for outcome in self._ingest(work.claims, tickers, end=work.selection.as_of):
            report = work.states[outcome.ticker].report
            if outcome.result is None:
                status = "flagged" if outcome.flagged else "failed"
                report.fail(status, outcome.error or f"{outcome.ticker}: ingest failed")
                continue
            report.new_rows, report.revised = outcome.result.new_rows, outcome.result.revised is not None
            for warning in outcome.result.warnings:
                log.warning("%s", warning)
            ready.append(outcome.ticker)
        return ready

    def _plans(self, work: _Run, tickers: list[str]) -> Iterator[Task]:
        """Each ticker's task, read just before it is handed to the executor."""
        selection, conn = work.selection, work.claims.conn
        for ticker in tickers:
            state = work.states[ticker]
            if self.stop.is_set():
                state.report.fail("stopped", f"{ticker}: stop requested")
                continue
            try:
                calendar = self.calendars(ticker)
                horizon = selection.as_of or calendar.last_closed_session(self.now())
                planned = plan(
                    conn, ticker, self.settings, calendar, horizon=horizon, start=selection.start,
                    retrain=selection.retrain,
                )  # fmt: skip
            except Exception as exc:
                conn.rollback()  # before the failure policy looks at the connection
                state.failed(exc, work.claims)
                continue
            finally:
                conn.rollback()
            self.on_plan(ticker, 0 if planned is None else len(planned.task.sessions))
            if planned is not None and selection.as_of is not None:
                last = planned.task.dates[-1].astype(dt.date)
                if last < selection.as_of:
                    log.warning(
                        "%s: the stored prices end %s, before --as-of/--end %s: forecasts stop there",
                        ticker, last, selection.as_of,
                    )  # fmt: skip
            if planned is not None:
                state.planned(planned)
                yield planned.task

    def _persist(self, work: _Run, state: _TickerState, steps: list[Step]) -> None:
        ticker = state.report.ticker
        last = steps[-1].as_of == state.last
        ids = save_steps(
            work.claims, ticker, steps, parent_id=state.parent_id, run_id=work.run_id, settings=self.settings,
            forecasts=work.selection.forecasts, run_first=state.first if last else None,
        )  # fmt: skip
        state.parent_id = ids[-1]
        for step, version_id in zip(steps, ids, strict=True):
            if step.warning:
                log.warning("%s", step.warning)
            state.report.add(step, version_id)
            log.debug("%s as of %s: %s (%s) -> %s", ticker, step.as_of, step.kind, step.reason, step.target)
            self.on_session(ticker, step.as_of)


@dataclass
class _TickerState:
    """One ticker's part of a cycle: its report, and where its replay stands."""

    report: TickerReport
    parent_id: int | None = None  # the version the next one updates
    first: dt.date | None = None  # the first and last session planned
    last: dt.date | None = None

    def planned(self, planned: Plan) -> None:
        self.parent_id = planned.parent_id
        self.first = planned.task.sessions[0].astype(dt.date)
        self.last = planned.task.sessions[-1].astype(dt.date)

    def failed(self, exc: Exception, claims: Claims) -> None:
        """The one failure policy (job.errors): the ticker stops, the others go on."""
        error = ticker_failure(self.report.ticker, exc, claims.verify)
        self.report.fail("failed", error, exc if unforeseen(exc) else None)

    def stopped(self) -> None:
        """A stop was requested: say so where it left the ticker unfinished or untouched."""
        report = self.report
        if report.status == "ok" and self.last and report.last_as_of != self.last.isoformat():
            done = f" after {report.last_as_of}" if report.last_as_of else ""
            report.fail("stopped", f"{report.ticker}: stop requested{done}")
        elif report.status == "ok" and not report.sessions and self.last is None:
            report.fail("stopped", f"{report.ticker}: stop requested")


@dataclass(frozen=True)
class _Run:
    """What the stages of one cycle share."""

    claims: Claims
    executor: Executor
    run_id: int
    selection: Selection
    states: dict[str, _TickerState]


class _Stopped(NightcastError):
    """A stop was requested (SIGTERM, Ctrl-C in the service) between two sessions."""


def _overall_status(reports: list[TickerReport]) -> str:
    """`busy`: nothing was done because other cycles held every ticker left undone."""
    ok = sum(r.status == "ok" for r in reports)
    if ok == len(reports):
        return "succeeded"
    if ok == 0 and all(r.status == "busy" for r in reports):
        return "busy"
    return "failed" if ok == 0 else "partial"


def _details(reports: dict[str, TickerReport]) -> dict[str, dict]:
    return {ticker: asdict(report) for ticker, report in reports.items()}
