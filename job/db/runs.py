"""The `job_runs` log: one row per cycle, written before work starts and closed after.

A running row is claimed (job.db.claims) for as long as its cycle lives, under a name kept in
its details, so a new cycle can tell a run still going on elsewhere from one whose process
died, and closes only the latter as abandoned.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

import sqlalchemy as sa

from job.db.claims import Claims
from job.db.engine import get_engine
from job.db.schema import job_runs
from job.support.clock import utcnow

Status = Literal["running", "succeeded", "partial", "failed", "busy"]


def start_run(claims: Claims, kind: str, tickers: list[str]) -> int:
    """Record a run as `running`, claimed for as long as this cycle lives; close the running
    rows of cycles that died."""
    conn = claims.conn
    running = conn.execute(sa.select(job_runs.c.id, job_runs.c.details).where(job_runs.c.status == "running"))
    candidates = [(row.id, (row.details or {}).get("claim")) for row in running]
    conn.commit()
    dead = [run_id for run_id, name in candidates if name is None or claims.is_free(name)]
    name = f"run/{uuid.uuid4()}"
    claims.take([name], wait=False)
    with conn.begin():
        if dead:
            conn.execute(
                sa.update(job_runs)
                .where(job_runs.c.id.in_(dead))
                .values(status="failed", finished_at=utcnow(), error="abandoned: the process died")
            )
        return conn.execute(
            sa.insert(job_runs)
            .values(
                kind=kind,
                status="running",
                started_at=utcnow(),
                tickers=tickers,
                details={"claim": name},
            )
            .returning(job_runs.c.id)
        ).scalar_one()


def finish_run(url: str, run_id: int, status: Status, details: dict[str, Any], error: str | None) -> None:
    """Close the row, on a connection of its own: the cycle's may be the thing that failed.
    `error` and `details` are stored as given: the caller scrubs them of passwords."""
    with get_engine(url).begin() as conn:
        conn.execute(
            sa.update(job_runs)
            .where(job_runs.c.id == run_id)
            .values(status=status, finished_at=utcnow(), details=details, error=error)
        )


def last_run(conn: sa.Connection) -> sa.Row[Any] | None:
    return conn.execute(sa.select(job_runs).order_by(job_runs.c.id.desc()).limit(1)).first()
