"""What `nightcast status` shows: is the schema current, what is stored, how did the last run go."""

from __future__ import annotations

import sqlalchemy as sa

from job.config import Settings
from job.db import get_engine, job_runs, prices
from job.db.migrate import current_revision, head_revision, require_current


def render_status(settings: Settings) -> str:
    url = settings.database_url
    revision = current_revision(url)
    head = head_revision(url)
    lines = [
        f"database: {settings.safe_database_url}",
        f"schema:   revision {revision or 'none'}"
        + ("" if revision == head else f" (head is {head}: run `nightcast migrate`)"),
    ]
    if revision != head:
        return "\n".join(lines)
    require_current(url)
    with get_engine(url).connect() as conn:
        per_ticker = conn.execute(
            sa.select(prices.c.ticker, sa.func.count(), sa.func.max(prices.c.date))
            .group_by(prices.c.ticker)
            .order_by(prices.c.ticker)
        ).all()
        last_run = conn.execute(sa.select(job_runs).order_by(job_runs.c.id.desc()).limit(1)).first()
    if per_ticker:
        lines.append("prices:")
        lines += [f"  {t:<16} {n:>7} rows, last session {last}" for t, n, last in per_ticker]
    else:
        lines.append("prices:   none stored yet")
    if last_run is None:
        lines.append("last run: none")
    else:
        lines.append(
            f"last run: #{last_run.id} {last_run.kind} {last_run.status}, started "
            f"{last_run.started_at:%Y-%m-%d %H:%M:%S}"
            + (f", error: {last_run.error}" if last_run.error else "")
        )
    return "\n".join(lines)
