"""The write side of a cycle: what one as-of session produced, stored in one transaction.

A session's model version, both forecasts and the rolling metrics they touch commit
together or not at all, on the connection that holds the ticker's claim, checked just
before the commit (job.claims). So a killed run leaves no half-written night, a rerun
resumes at the first session without forecasts, and a claim lost mid-run stops the
ticker before anything more is written.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from job.claims import Claims
from job.config import Settings
from job.db import predictions, upsert
from job.db.versions import save_version
from job.evaluate import update_rolling_metrics
from job.model.replay import COLUMNS, MODELS, Step

_COLUMNS = ("predicted_close", *COLUMNS[1:-1], "network_close")  # Step.forecasts as `predictions` names them


def save_step(
    claims: Claims,
    ticker: str,
    step: Step,
    *,
    parent_id: int | None,
    run_id: int | None,
    settings: Settings,
    forecasts: bool = True,
    last: bool = True,
) -> int:
    """Store the session's model version (and, unless `forecasts` is off, its forecasts and
    the metrics they touch: those after the session only at the `last` one of a run, since
    each later session writes its own); returns the version id."""
    conn = claims.conn
    with conn.begin():
        version_id = save_version(
            conn,
            ticker=ticker,
            kind=step.kind,
            parent_id=parent_id,
            trained_from=step.trained_from,
            trained_through=step.as_of,
            fit=step.fit,
            params=settings.model,
            keep_artifacts=settings.policy.keep_artifacts,
        )
        if forecasts:
            created = dt.datetime.now(dt.UTC)
            upsert(
                conn,
                predictions,
                [
                    {"ticker": ticker, "target_date": step.target, "model": model, "as_of_date": step.as_of,
                     "model_version_id": version_id if model == "lstm" else None, "run_id": run_id,
                     "created_at": created}
                    | {c: None if np.isnan(v) else float(v) for c, v in zip(_COLUMNS, values, strict=True)}
                    for model, values in zip(MODELS, step.forecasts, strict=True)
                ],
            )  # fmt: skip
            until = None if last else step.as_of
            update_rolling_metrics(conn, ticker, settings.metric_windows, since=step.as_of, until=until)
        claims.verify(ticker)
    return version_id
