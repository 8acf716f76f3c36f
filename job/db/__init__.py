"""Database access: the schema (the SQL contract), engines and set-based writes."""

from job.db.engine import get_engine
from job.db.schema import (
    job_runs,
    metadata,
    model_versions,
    predictions,
    price_flags,
    price_revisions,
    prices,
    rolling_metrics,
)
from job.db.upsert import upsert

__all__ = [
    "get_engine",
    "job_runs",
    "metadata",
    "model_versions",
    "predictions",
    "price_flags",
    "price_revisions",
    "prices",
    "rolling_metrics",
    "upsert",
]
