"""Model versions in `model_versions`, as rows and bytes (the model packs and unpacks them).

Every function takes a Connection inside the caller's transaction and never commits, so a
ticker's model, predictions and metrics commit together or not at all.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from job.db.schema import model_versions as mv

#: What loading a version reads: never `params`, a record for people that no load depends on
#: (so that one unreadable there cannot stop a ticker's every night).
_LOADED = (mv.c.id, mv.c.kind, mv.c.trained_through, mv.c.created_at, mv.c.artifact, mv.c.artifact_sha256)
#: Price-unit figures that a version's `params` keep of its validation tail.
VALIDATION_PRICES = ("val_rmse", "val_naive_rmse")


def insert_version(conn: sa.Connection, row: dict[str, Any], *, keep_artifacts: int | None) -> int:
    """Insert a version and return its id; then, unless `keep_artifacts` is None (more of
    the ticker's versions follow in this transaction), keep bytes only for the ticker's
    newest `keep_artifacts` versions (metadata stays forever)."""
    version_id = int(conn.execute(_INSERT, row).inserted_primary_key[0])
    if keep_artifacts is not None:
        conn.execute(_PRUNE, {"of_ticker": row["ticker"], "keep": keep_artifacts})
    return version_id


# Statements with parameters, not `.values(...)`: SQLAlchemy compiles each once per process
# instead of rebuilding it for every one of a backfill's versions.
_INSERT = mv.insert()
_NEWEST = (
    sa.select(mv.c.id)
    .where(mv.c.ticker == sa.bindparam("of_ticker"))
    .order_by(mv.c.trained_through.desc(), mv.c.id.desc())
    .limit(sa.bindparam("keep", type_=sa.Integer))
)
_PRUNE = (
    mv.update()
    .where(mv.c.ticker == sa.bindparam("of_ticker"), mv.c.artifact.is_not(None), mv.c.id.not_in(_NEWEST))
    .values(artifact=None)
)


def latest_version(conn: sa.Connection, ticker: str, *, through: dt.date | None = None) -> sa.Row[Any] | None:
    """The newest version with `trained_through <= through` (any date when None): id, kind,
    trained_through, created_at, artifact, artifact_sha256."""
    query = sa.select(*_LOADED).where(mv.c.ticker == ticker)
    if through is not None:
        query = query.where(mv.c.trained_through <= through)
    return conn.execute(query.order_by(mv.c.trained_through.desc(), mv.c.id.desc()).limit(1)).one_or_none()


def version(conn: sa.Connection, ticker: str, version_id: int | None) -> sa.Row[Any] | None:
    """A version of the ticker by id (None: its newest), as `latest_version` reads it."""
    if version_id is None:
        return latest_version(conn, ticker)
    return conn.execute(sa.select(*_LOADED).where(mv.c.ticker == ticker, mv.c.id == version_id)).one_or_none()


def last_retrain_through(conn: sa.Connection, version_id: int) -> dt.date | None:
    """trained_through of the nearest `retrain` ancestor (the version itself included)."""
    chain = (
        sa.select(mv.c.id, mv.c.parent_id, mv.c.kind, mv.c.trained_through, sa.literal(0).label("depth"))
        .where(mv.c.id == version_id)
        .cte("chain", recursive=True)
    )
    chain = chain.union_all(
        sa.select(mv.c.id, mv.c.parent_id, mv.c.kind, mv.c.trained_through, chain.c.depth + 1).join(
            chain, mv.c.id == chain.c.parent_id
        )
    )
    query = (
        sa.select(chain.c.trained_through).where(chain.c.kind == "retrain").order_by(chain.c.depth).limit(1)
    )
    return conn.execute(query).scalar_one_or_none()


def rescale_validation(conn: sa.Connection, ticker: str, factor: float) -> int:
    """The price-unit validation figures in each version's `params`, times `factor`. A
    version whose params cannot be read is left as it is (it is history, and unused)."""
    if factor == 1.0:
        return 0
    rows = conn.execute(sa.select(mv.c.id, sa.cast(mv.c.params, sa.Text)).where(mv.c.ticker == ticker)).all()
    updates = []
    for version_id, text in rows:
        try:
            params = json.loads(text)
            figures = params["forecaster"]
        except (TypeError, ValueError, KeyError):
            continue
        if not isinstance(figures, dict):
            continue
        for name in VALIDATION_PRICES:
            if isinstance(figures.get(name), int | float):
                figures[name] *= factor
        updates.append({"version": version_id, "params": params})
    if updates:
        conn.execute(sa.update(mv).where(mv.c.id == sa.bindparam("version")), updates)
    return len(updates)
