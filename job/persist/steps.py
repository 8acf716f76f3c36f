"""The write side of a cycle: what as-of sessions produced, stored in one transaction; and
what a price revision asks of the stored forecasts, versions and metrics.

A session's model version, both forecasts and the rolling metrics they touch commit
together or not at all (with the other sessions of its Dask chunk), on the connection that
holds the ticker's claim, checked just before the commit (job.db.claims). So a killed run
leaves no half-written night, a rerun resumes at the first session without forecasts, and
a claim lost mid-run stops the ticker before anything more is written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa

from job.config import Settings
from job.db.claims import Claims
from job.db.forecasts import rescale_forecasts, save_forecasts
from job.db.versions import rescale_validation
from job.forecast.compute import Step
from job.forecast.entries import versioned_names
from job.forecast.evaluate import update_rolling_metrics
from job.forecast.model.stored import save_version
from job.ingest.revisions import Change, Follow
from job.support.clock import utcnow


def save_steps(
    claims: Claims,
    ticker: str,
    steps: Sequence[Step],
    *,
    parent_id: int | None,
    run_id: int | None,
    settings: Settings,
    forecasts: bool = True,
    run_first: dt.date | None = None,
) -> list[int]:
    """Store consecutive sessions' model versions, each the parent of the next (and, unless
    `forecasts` is off, their forecasts and the metrics rows of their own dates), in one
    transaction; returns the version ids. `run_first`, given with a run's last sessions:
    the run's first session, from which every metrics row is then rewritten, those its
    forecasts reach beyond its sessions and inside gaps it filled included. A Dask chunk
    commits at once: per session, commits and metric reads would cost more than the writes
    themselves, on the process that also schedules the workers."""
    conn, ids = claims.conn, []
    with conn.begin():
        for index, step in enumerate(steps):
            parent_id = save_version(
                conn, ticker=ticker, kind=step.kind, parent_id=parent_id, trained_from=step.trained_from,
                trained_through=step.as_of, fit=step.fit, params=settings.model,
                keep_artifacts=settings.policy.keep_artifacts, newer_in_batch=len(steps) - 1 - index,
            )  # fmt: skip
            ids.append(parent_id)
            if forecasts:
                _save_forecasts(conn, ticker, step, parent_id, run_id)
        if forecasts:
            windows, own = settings.metric_windows, {step.as_of for step in steps}
            update_rolling_metrics(
                conn, ticker, windows, since=steps[0].as_of, until=steps[-1].as_of, only=own
            )
            if run_first is not None:
                update_rolling_metrics(conn, ticker, windows, since=run_first, reach=steps[-1].as_of)
        claims.verify(ticker)
    return ids


def _save_forecasts(
    conn: sa.Connection, ticker: str, step: Step, version_id: int, run_id: int | None
) -> None:
    created, versioned = utcnow(), versioned_names()
    save_forecasts(
        conn,
        [
            {"ticker": ticker, "target_date": step.target, "model": model, "as_of_date": step.as_of,
             "model_version_id": version_id if model in versioned else None, "run_id": run_id,
             "created_at": created} | forecast.row()
            for model, forecast in step.forecasts.items()
        ],
    )  # fmt: skip


def revision_follower(windows: list[int]) -> Follow:
    """What a re-based history asks of what is stored (handed to the ingest stage): after the
    ticker's prices were re-based by the change's factor (and its corrected sessions by
    their own ratios), in the same transaction, its forecasts and validation figures
    follow, and its metrics (`windows`) are recomputed."""

    def follow(conn: sa.Connection, ticker: str, change: Change) -> int:
        rescaled = rescale_forecasts(conn, ticker, change.factor, change.corrections)
        rescale_validation(conn, ticker, change.factor)
        update_rolling_metrics(conn, ticker, windows, since=None)
        return rescaled

    return follow
