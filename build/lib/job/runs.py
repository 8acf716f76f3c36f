"""The `job_runs` log: one row per cycle, written before work starts and closed after."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa

from job.db import get_engine, job_runs

Status = Literal["running", "succeeded", "partial", "failed"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def start_run(url: str, kind: str, tickers: list[str]) -> int:
    """Record a run as `running`; any older `running` row is a run that died, so close it.

    Only the holder of the cycle lock calls this, which is what makes older rows stale.
    """
    with get_engine(url).begin() as conn:
        conn.execute(
            sa.update(job_runs)
            .where(job_runs.c.status == "running")
            .values(status="failed", finished_at=utcnow(), error="abandoned: the process died")
        )
        return conn.execute(
            sa.insert(job_runs)
            .values(kind=kind, status="running", started_at=utcnow(), tickers=tickers, details={})
            .returning(job_runs.c.id)
        ).scalar_one()


def finish_run(url: str, run_id: int, status: Status, details: dict[str, Any], error: str | None) -> None:
    with get_engine(url).begin() as conn:
        conn.execute(
            sa.update(job_runs)
            .where(job_runs.c.id == run_id)
            .values(status=status, finished_at=utcnow(), details=details, error=error)
        )
