"""One nightly cycle: ingest -> evaluate -> update or retrain -> predict, per ticker.

The unit of work is one (ticker, as-of session): its metrics, model version and both
forecasts commit together or not at all, so a killed run never leaves half a night behind
and a rerun resumes at the first session without forecasts. The nightly run, its catch-up
of missed sessions, and `backfill` are the same loop over different session lists.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa

from job.calendar import Sessions, get_sessions
from job.config import Settings
from job.db import get_engine, model_versions, predictions, price_revisions, prices, upsert
from job.db.migrate import require_current
from job.errors import TickerError, one_line
from job.evaluate import skill, update_rolling_metrics
from job.ingest import ingest_ticker
from job.lock import cycle_lock
from job.model import ArtifactError, Forecaster, train, update, warm_up
from job.model.policy import decide
from job.model.store import LoadedModel, load_latest, save_version
from job.runs import finish_run, start_run, utcnow
from job.sources import PriceSource

log = logging.getLogger(__name__)

Kind = Literal["run", "backfill"]


@dataclass
class TickerReport:
    """What one ticker's part of a cycle did; stored in `job_runs.details`."""

    ticker: str
    status: Literal["ok", "failed", "stopped"] = "ok"
    new_rows: int = 0
    revised: bool = False
    first_as_of: str | None = None
    last_as_of: str | None = None
    sessions: int = 0
    retrains: int = 0
    updates: int = 0
    error: str | None = None


@dataclass
class CycleReport:
    run_id: int
    status: str
    tickers: list[TickerReport] = field(default_factory=list)

    @property
    def failed(self) -> list[TickerReport]:
        return [t for t in self.tickers if t.status == "failed"]


@dataclass
class _ModelState:
    """The ticker's current model, carried between sessions of one cycle."""

    version_id: int
    forecaster: Forecaster
    last_retrain_through: date
    revised_since: bool = False  # prices were re-based after this model was trained

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, revised_since: bool) -> _ModelState:
        return cls(loaded.version_id, loaded.forecaster, loaded.last_retrain_through, revised_since)


SessionCallback = Callable[[str, date], None]
PlanCallback = Callable[[str, int], None]


class Cycle:
    """Runs cycles against one database with one price source."""

    def __init__(
        self,
        settings: Settings,
        source: PriceSource,
        *,
        stop: threading.Event | None = None,
        on_session: SessionCallback | None = None,
        on_plan: PlanCallback | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.source = source
        self.sessions: Sessions = get_sessions(settings.calendar)
        self.engine = get_engine(settings.database_url)
        self.stop = stop or threading.Event()
        self.on_session = on_session
        self.on_plan = on_plan
        self.now = now

    def run(
        self,
        tickers: list[str],
        *,
        kind: Kind = "run",
        as_of: date | None = None,
        start: date | None = None,
        wait: bool = False,
    ) -> CycleReport:
        """One locked, logged cycle. `start` (backfill) replays every session from there."""
        url = self.settings.database_url
        require_current(url)
        horizon = as_of or self.sessions.last_closed_session(self.now())
        with cycle_lock(url, wait=wait):
            run_id = start_run(url, kind, tickers)
            reports: list[TickerReport] = []
            tensorflow = warm_up()  # imports while prices download
            try:
                for ticker in tickers:
                    if self.stop.is_set():
                        reports.append(TickerReport(ticker, status="stopped", error="stop requested"))
                        continue
                    reports.append(self._ticker(ticker, run_id, horizon, start))
            except BaseException as exc:
                finish_run(url, run_id, "failed", _details(reports), f"interrupted: {one_line(exc)}")
                raise
            finally:
                tensorflow.join()
            status = _overall_status(reports)
            errors = "; ".join(r.error for r in reports if r.error)
            finish_run(url, run_id, status, _details(reports), errors or None)
        return CycleReport(run_id, status, reports)

    def _ticker(self, ticker: str, run_id: int, horizon: date, start: date | None) -> TickerReport:
        report = TickerReport(ticker)
        try:
            with self.engine.begin() as conn:
                ingested = ingest_ticker(
                    conn,
                    ticker,
                    self.source,
                    self.sessions,
                    history_start=self.settings.history_start,
                    end=horizon,
                    now=self.now(),
                )
                report.new_rows, report.revised = ingested.new_rows, ingested.revised is not None
                closes = _load_closes(conn, ticker, horizon)
                todo = self._pending(conn, ticker, closes, horizon, start)
                if self.on_plan:
                    self.on_plan(ticker, len(todo))
                if todo:
                    state = self._load_model(conn, ticker, todo[0])
                    state = self._session(conn, ticker, todo[0], closes, state, run_id, report)
            for session in todo[1:]:
                if self.stop.is_set():
                    report.status, report.error = "stopped", f"{ticker}: stopped at {session}"
                    break
                with self.engine.begin() as conn:
                    state = self._session(conn, ticker, session, closes, state, run_id, report)
        except TickerError as exc:
            report.status, report.error = "failed", one_line(exc)
            log.error("%s", report.error)
        except Exception as exc:  # one bad ticker never stops the others
            report.status, report.error = "failed", f"{ticker}: {one_line(exc)}"
            log.error("%s", report.error, exc_info=True)  # the traceback stays in the service's log
        else:
            if report.error:
                log.error("%s", report.error)
        return report

    def _pending(
        self,
        conn: sa.Connection,
        ticker: str,
        closes: pd.Series,
        horizon: date,
        start: date | None,
    ) -> list[date]:
        """As-of sessions still without forecasts, oldest first.

        Nightly: every stored session after the last forecast up to the horizon (the
        catch-up after missed nights), or only the horizon for a ticker never forecast.
        Backfill: every session from the one before `start` (whose forecast targets `start`).
        """
        stored = [d for d in closes.index if d <= horizon]
        if not stored:
            raise TickerError(ticker, f"no stored prices on or before {horizon}")
        done = set(
            conn.execute(
                sa.select(predictions.c.as_of_date)
                .distinct()
                .where(predictions.c.ticker == ticker, predictions.c.model == "naive")
            ).scalars()
        )
        if start is not None:
            before = [d for d in stored if d < start]
            if not before:
                raise TickerError(ticker, f"no stored session before --start {start} to train on")
            lower = before[-1]
        else:
            later = [d for d in done if d <= horizon]
            lower = max(later) if later and max(later) < horizon else stored[-1]
            if lower == stored[-1] and stored[-1] not in done:
                return [stored[-1]]
        return [d for d in stored if d >= lower and d not in done]

    def _load_model(self, conn: sa.Connection, ticker: str, as_of: date) -> _ModelState | None:
        """The newest model trained on data before `as_of`; a broken artifact means retrain."""
        try:
            loaded = load_latest(conn, ticker, through=as_of)
        except ArtifactError as exc:
            log.warning("%s; retraining from scratch", exc)
            return None
        if loaded is None:
            return None
        # Revisions are only detected by ingest, before a cycle's first session, so only a
        # model loaded from the database can predate one.
        return _ModelState.from_loaded(loaded, _revised_since(conn, ticker, loaded.created_at))

    def _session(
        self,
        conn: sa.Connection,
        ticker: str,
        as_of: date,
        closes: pd.Series,
        state: _ModelState | None,
        run_id: int,
        report: TickerReport,
    ) -> _ModelState:
        """Evaluate, update or retrain, and forecast the next session, as of one evening."""
        settings, params = self.settings, self.settings.model
        history = closes.loc[:as_of]  # nothing after the as-of session reaches the model
        update_rolling_metrics(
            conn, ticker, as_of, settings.metric_windows, recompute=report.revised and not report.sessions
        )
        if state is not None and not state.forecaster.suits(params):
            log.info("%s: model parameters changed since version %d", ticker, state.version_id)
            state = None
        decision = decide(
            has_model=state is not None,
            sessions_since_retrain=(
                len(self.sessions.sessions_in_range(state.last_retrain_through, as_of)) - 1 if state else 0
            ),
            revised_since_model=state is not None and state.revised_since,
            skill=skill(conn, ticker, as_of, settings.policy.skill_window),
            policy=settings.policy,
        )
        values = history.to_numpy()
        try:
            if decision.kind == "retrain" or state is None:
                fit, kind = train(values, params), "retrain"
            else:
                fit, kind = update(state.forecaster, values, params), "update"
        except ValueError as exc:  # too little or unusable history for this ticker
            raise TickerError(ticker, f"as of {as_of}: {exc}") from None
        used = fit.n_closes
        version_id = save_version(
            conn,
            ticker=ticker,
            kind=kind,
            parent_id=state.version_id if state else None,
            trained_from=history.index[len(values) - used],
            trained_through=as_of,
            fit=fit,
            params=params,
            keep_artifacts=settings.policy.keep_artifacts,
        )
        target = self.sessions.next_session(as_of)
        created = utcnow()
        forecasts = {"lstm": fit.forecaster.forecast(values), "naive": float(values[-1])}
        upsert(
            conn,
            predictions,
            [
                {
                    "ticker": ticker,
                    "target_date": target,
                    "model": model,
                    "as_of_date": as_of,
                    "predicted_close": value,
                    "model_version_id": version_id if model == "lstm" else None,
                    "run_id": run_id,
                    "created_at": created,
                }
                for model, value in forecasts.items()
            ],
        )
        log.debug("%s as of %s: %s (%s) -> %s", ticker, as_of, kind, decision.reason, target)
        report.sessions += 1
        report.first_as_of = report.first_as_of or as_of.isoformat()
        report.last_as_of = as_of.isoformat()
        if kind == "retrain":
            report.retrains += 1
        else:
            report.updates += 1
        if self.on_session:
            self.on_session(ticker, as_of)
        return _ModelState(
            version_id,
            fit.forecaster,
            as_of if kind == "retrain" else (state.last_retrain_through if state else as_of),
        )


def _load_closes(conn: sa.Connection, ticker: str, through: date) -> pd.Series:
    rows = conn.execute(
        sa.select(prices.c.date, prices.c.close)
        .where(prices.c.ticker == ticker, prices.c.date <= through)
        .order_by(prices.c.date)
    ).all()
    return pd.Series(np.array([r[1] for r in rows], dtype=float), index=[r[0] for r in rows], name=ticker)


def _revised_since(conn: sa.Connection, ticker: str, since: datetime) -> bool:
    return (
        conn.execute(
            sa.select(sa.func.count())
            .select_from(price_revisions)
            .where(price_revisions.c.ticker == ticker, price_revisions.c.detected_at > since)
        ).scalar_one()
        > 0
    )


def _overall_status(reports: list[TickerReport]) -> str:
    ok = sum(r.status == "ok" for r in reports)
    if ok == len(reports):
        return "succeeded"
    return "failed" if ok == 0 else "partial"


def _details(reports: list[TickerReport]) -> dict[str, dict]:
    return {r.ticker: asdict(r) for r in reports}


def retrain_now(settings: Settings, *, as_of: date | None, wait: bool = False) -> list[str]:
    """`nightcast train`: a from-scratch model per ticker on stored prices, one line each.

    Holds the cycle lock so a forced retrain never interleaves with a nightly run.
    """
    url = settings.database_url
    require_current(url)
    engine = get_engine(url)
    lines = []
    with cycle_lock(url, wait=wait):
        for ticker in settings.tickers:
            with engine.begin() as conn:
                closes = _load_closes(conn, ticker, as_of or date.max)
                if closes.empty:
                    lines.append(
                        f"error: {ticker}: no stored prices" + (f" on or before {as_of}" if as_of else "")
                    )
                    continue
                previous = conn.execute(
                    sa.select(sa.func.max(model_versions.c.id)).where(model_versions.c.ticker == ticker)
                ).scalar()
                try:
                    fit = train(closes.to_numpy(), settings.model)
                except ValueError as exc:
                    lines.append(f"error: {ticker}: {exc}")
                    continue
                used = fit.n_closes
                version_id = save_version(
                    conn,
                    ticker=ticker,
                    kind="retrain",
                    parent_id=previous,
                    trained_from=closes.index[len(closes) - used],
                    trained_through=closes.index[-1],
                    fit=fit,
                    params=settings.model,
                    keep_artifacts=settings.policy.keep_artifacts,
                )
            skill = (
                f"validation RMSE {fit.val_rmse:.4f} vs naive {fit.val_naive_rmse:.4f} "
                f"(ratio {fit.val_rmse / fit.val_naive_rmse:.3f})"
                if fit.val_rmse is not None and fit.val_naive_rmse
                else "no validation tail"
            )
            lines.append(
                f"{ticker}: version {version_id}, trained on {closes.index[len(closes) - used]}.."
                f"{closes.index[-1]}, {fit.epochs} epochs, {skill}"
            )
    return lines
