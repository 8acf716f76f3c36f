"""Model versions as the model knows them: a fit packed into a `model_versions` row, a row
unpacked (and checked) into a forecaster, a version written as a `.keras` file.

The table speaks rows and bytes (job.db.versions); what the bytes mean is job.forecast.model's.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from job.db import get_engine
from job.db import versions as table
from job.errors import TickerError
from job.forecast.model import artifact, features
from job.forecast.model.artifact import ArtifactError
from job.forecast.model.core import Fit, Forecaster
from job.forecast.params import ModelParams
from job.support.clock import utcnow
from job.support.files import replace_file


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
    newer_in_batch: int = 0,
) -> int:
    """Insert a version and return its id; only the newest `keep_artifacts` keep their bytes.
    `newer_in_batch`: the ticker's versions this transaction inserts after this one. A
    version with `keep_artifacts` newer ones is stored without bytes (they would be dropped
    at once), and only the last one prunes: a backfill chunk's writes stay small.

    `params` stores the ModelParams as given plus a `forecaster` entry (format, architecture,
    scaling, shrink, validation RMSEs): enough to read a version without unpacking its bytes.
    """
    data, sha256 = fit.forecaster.artifact
    stored_params: dict[str, Any] = params.model_dump(mode="json")
    stored_params["forecaster"] = artifact.describe(fit.forecaster) | {
        "val_rmse": _finite_or_none(fit.val_rmse),
        "val_naive_rmse": _finite_or_none(fit.val_naive_rmse),
    }
    row = {
        "ticker": ticker, "kind": kind, "parent_id": parent_id, "trained_from": trained_from,
        "trained_through": trained_through, "n_samples": fit.n_samples, "epochs": fit.epochs,
        "params": stored_params, "train_loss": _finite_or_none(fit.train_loss),
        "val_loss": _finite_or_none(fit.val_loss), "artifact_sha256": sha256,
        "artifact": data if newer_in_batch < keep_artifacts else None, "created_at": utcnow(),
    }  # fmt: skip
    return table.insert_version(conn, row, keep_artifacts=None if newer_in_batch else keep_artifacts)


def load_latest(conn: sa.Connection, ticker: str, *, through: dt.date | None = None) -> LoadedModel | None:
    """The newest version with `trained_through <= through` (any date when None), or None.

    Raises ArtifactError when that version's bytes are pruned, missing, altered (sha256
    mismatch) or unreadable; the caller retrains rather than silently using an older model.
    """
    row = table.latest_version(conn, ticker, through=through)
    if row is None:
        return None
    return LoadedModel(
        version_id=row.id,
        kind=row.kind,
        trained_through=row.trained_through,
        last_retrain_through=table.last_retrain_through(conn, row.id) or row.trained_through,
        created_at=row.created_at,
        forecaster=_forecaster(ticker, row),
    )


def _forecaster(ticker: str, row: sa.Row[Any]) -> Forecaster:
    if row.artifact is None:
        raise ArtifactError(ticker, row.id, "artifact bytes are missing (pruned?)")
    data = bytes(row.artifact)
    if artifact.sha256(data) != row.artifact_sha256:
        raise ArtifactError(ticker, row.id, "artifact sha256 mismatch (corrupt)")
    try:
        return Forecaster.unpack(data)
    except Exception as exc:  # zip, JSON or shape errors: any of them means unusable bytes
        raise ArtifactError(ticker, row.id, f"artifact unreadable ({type(exc).__name__}: {exc})") from exc


def export_keras(url: str, ticker: str, version_id: int | None, out: Path) -> int:
    """`nightcast export`: a stored version (default: the ticker's newest) as a `.keras` file,
    and next to it a `.json` with what applying it needs: the window, the input series, the
    scaling statistics of its training window and the guard's factor (`usage` says how)."""
    from job.forecast.model.network import save_keras

    with get_engine(url).connect() as conn:
        row = table.version(conn, ticker, version_id)
    if row is None:
        which = f"version {version_id}" if version_id is not None else "model version"
        raise TickerError(ticker, f"no {which} stored for this ticker")
    forecaster = _forecaster(ticker, row)
    replace_file(out, lambda tmp: save_keras(forecaster.spec, forecaster.weights, tmp))
    recipe = {"ticker": ticker, "model_version_id": row.id, "trained_through": str(row.trained_through),
              **artifact.describe(forecaster), "usage": _usage(forecaster)}  # fmt: skip
    text = json.dumps(recipe, indent=2, sort_keys=True) + "\n"
    replace_file(out.with_suffix(".json"), lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return row.id


def _usage(forecaster: Forecaster) -> str:
    """How to turn bars into the forecast this model stored, in words and formulas."""
    if forecaster.levels:
        return (
            "x = the last `window` closes, shape (1, window, 1); x_scaled = (x - scaling.center[0]) "
            "/ scaling.scale[0], y = model(x_scaled) * scaling.scale[0] + scaling.center[0]; y is the "
            "next close."
        )
    return (
        f"x = the last `window` sessions of the columns {', '.join(features.NAMES)} (nightcast's "
        "job.forecast.model.features.table of the stored bars), shape (1, window, inputs); x_scaled = (x - "
        "scaling.center) / scaling.scale per column; (m, v) = model(x_scaled): the next log return's mean "
        "m * scaling.scale[0] + scaling.center[0] and standard deviation exp(v / 2) * scaling.scale[0]. "
        "The network's next close = last close * exp(mean). nightcast's stored LSTM forecast is last close "
        "* exp(shrink * mean) while the guard's live test passes, else the last close."
    )


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
