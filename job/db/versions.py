"""Model versions in the database: save, prune old artifacts, load the latest.

Every function takes a Connection inside the caller's transaction and never commits, so a
ticker's model, predictions and metrics commit together or not at all.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from job.config import ModelParams
from job.db.engine import get_engine
from job.db.schema import model_versions as mv
from job.errors import TickerError
from job.model import artifact
from job.model.artifact import ArtifactError
from job.model.core import Fit, Forecaster


@dataclass(frozen=True)
class LoadedModel:
    """A stored forecaster with the facts the retrain policy needs."""

    version_id: int
    kind: str
    trained_through: dt.date
    last_retrain_through: dt.date
    created_at: dt.datetime
    forecaster: Forecaster


def save_version(
    conn: sa.Connection,
    *,
    ticker: str,
    kind: Literal["retrain", "update"],
    parent_id: int | None,
    trained_from: dt.date,
    trained_through: dt.date,
    fit: Fit,
    params: ModelParams,
    keep_artifacts: int,
) -> int:
    """Insert a version and return its id; then keep bytes only for the newest `keep_artifacts`.

    `params` stores the ModelParams as given plus a `forecaster` entry (format, architecture,
    scaling, shrink, validation RMSEs): enough to read a version without unpacking its bytes.
    """
    data = artifact.pack(fit.forecaster)
    stored_params: dict[str, Any] = params.model_dump(mode="json")
    stored_params["forecaster"] = artifact.describe(fit.forecaster) | {
        "val_rmse": _finite_or_none(fit.val_rmse),
        "val_naive_rmse": _finite_or_none(fit.val_naive_rmse),
    }
    row = {
        "ticker": ticker,
        "kind": kind,
        "parent_id": parent_id,
        "trained_from": trained_from,
        "trained_through": trained_through,
        "n_samples": fit.n_samples,
        "epochs": fit.epochs,
        "params": stored_params,
        "train_loss": _finite_or_none(fit.train_loss),
        "val_loss": _finite_or_none(fit.val_loss),
        "artifact": data,
        "artifact_sha256": artifact.sha256(data),
        "created_at": dt.datetime.now(dt.UTC),
    }
    # A statement with parameters, not `.values(...)`: SQLAlchemy compiles it once per process
    # instead of rebuilding it for every one of a backfill's versions.
    version_id = int(conn.execute(_INSERT, row).inserted_primary_key[0])
    prune_artifacts(conn, ticker, keep=keep_artifacts)
    return version_id


_INSERT = mv.insert()


def prune_artifacts(conn: sa.Connection, ticker: str, *, keep: int) -> int:
    """NULL the bytes of all but the newest `keep` versions (load_latest's order); metadata stays."""
    return conn.execute(_PRUNE, {"of_ticker": ticker, "keep": keep}).rowcount


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


def load_latest(conn: sa.Connection, ticker: str, *, through: dt.date | None = None) -> LoadedModel | None:
    """The newest version with `trained_through <= through` (any date when None), or None.

    Raises ArtifactError when that version's bytes are pruned, missing, altered (sha256
    mismatch) or unreadable; the caller retrains rather than silently using an older model.
    """
    query = sa.select(*_LOADED).where(mv.c.ticker == ticker)
    if through is not None:
        query = query.where(mv.c.trained_through <= through)
    row = conn.execute(query.order_by(mv.c.trained_through.desc(), mv.c.id.desc()).limit(1)).one_or_none()
    if row is None:
        return None
    return LoadedModel(
        version_id=row.id,
        kind=row.kind,
        trained_through=row.trained_through,
        last_retrain_through=_last_retrain_through(conn, row.id) or row.trained_through,
        created_at=row.created_at,
        forecaster=_forecaster(ticker, row),
    )


#: What loading a version reads: never `params`, a record for people that no load depends on
#: (so that one unreadable there cannot stop a ticker's every night).
_LOADED = (mv.c.id, mv.c.kind, mv.c.trained_through, mv.c.created_at, mv.c.artifact, mv.c.artifact_sha256)


def _forecaster(ticker: str, row: sa.Row[Any]) -> Forecaster:
    if row.artifact is None:
        raise ArtifactError(ticker, row.id, "artifact bytes are missing (pruned?)")
    data = bytes(row.artifact)
    if artifact.sha256(data) != row.artifact_sha256:
        raise ArtifactError(ticker, row.id, "artifact sha256 mismatch (corrupt)")
    try:
        return artifact.unpack(data)
    except Exception as exc:  # zip, JSON or shape errors: any of them means unusable bytes
        raise ArtifactError(ticker, row.id, f"artifact unreadable ({type(exc).__name__}: {exc})") from exc


def export_keras(url: str, ticker: str, version_id: int | None, out: Path) -> int:
    """`nightcast export`: a stored version (default: the ticker's newest) as a `.keras` file."""
    from job.files import replace_file
    from job.model.network import save_keras

    query = sa.select(*_LOADED).where(mv.c.ticker == ticker)
    query = query.where(mv.c.id == version_id) if version_id is not None else query
    with get_engine(url).connect() as conn:
        row = conn.execute(query.order_by(mv.c.trained_through.desc(), mv.c.id.desc()).limit(1)).one_or_none()
    if row is None:
        which = f"version {version_id}" if version_id is not None else "model version"
        raise TickerError(ticker, f"no {which} stored for this ticker")
    forecaster = _forecaster(ticker, row)
    replace_file(out, lambda tmp: save_keras(forecaster.spec, forecaster.weights, tmp))
    return row.id


def _last_retrain_through(conn: sa.Connection, version_id: int) -> dt.date | None:
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


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and value == value and abs(value) != float("inf") else None
