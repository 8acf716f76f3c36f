"""Model versions in SQL, on SQLite and PostgreSQL: round trip, pruning, corrupt artifacts."""

from __future__ import annotations

import datetime as dt
import io
import json

import numpy as np
import pytest
import sqlalchemy as sa

from job.db import get_engine, model_versions
from job.forecast.model import ArtifactError, Fit, train, update
from job.forecast.model.stored import load_latest, save_version
from job.forecast.params import ModelParams

TINY = ModelParams(
    window=5, lstm_units=(6, 5), dense_units=4, batch_size=32, max_epochs=3, patience=2, train_sessions=200
)
DAY = dt.date(2020, 1, 1)


@pytest.fixture(scope="module")
def closes() -> np.ndarray:
    return 50 * np.exp(np.cumsum(np.random.default_rng(3).normal(0.001, 0.02, 260)))


@pytest.fixture(scope="module")
def fit(closes: np.ndarray) -> Fit:
    return train(closes, TINY)


def _save(
    conn: sa.Connection,
    fit: Fit,
    day: int,
    *,
    kind: str = "retrain",
    parent: int | None = None,
    keep: int = 5,
    newer: int = 0,
) -> int:
    return save_version(
        conn,
        ticker="TSLA",
        kind=kind,  # type: ignore[arg-type]
        parent_id=parent,
        trained_from=DAY,
        trained_through=DAY + dt.timedelta(days=day),
        fit=fit,
        params=TINY,
        keep_artifacts=keep,
        newer_in_batch=newer,
    )


def test_round_trip_gives_identical_forecasts(migrated_url: str, closes: np.ndarray, fit: Fit) -> None:
    with get_engine(migrated_url).begin() as conn:
        version = _save(conn, fit, 0)
    with get_engine(migrated_url).connect() as conn:
        loaded = load_latest(conn, "TSLA")
        row = conn.execute(sa.select(model_versions).where(model_versions.c.id == version)).one()
    assert loaded is not None and loaded.version_id == version
    assert loaded.kind == "retrain" and loaded.trained_through == DAY == loaded.last_retrain_through
    assert loaded.created_at.tzinfo is not None
    as_of = np.arange(100, 259)
    assert np.array_equal(
        loaded.forecaster.forecast_many(closes, as_of), fit.forecaster.forecast_many(closes, as_of)
    )
    assert (
        loaded.forecaster.shrink == fit.forecaster.shrink
        and loaded.forecaster.scaling == fit.forecaster.scaling
    )
    assert row.epochs == fit.epochs and row.n_samples == fit.n_samples and len(row.artifact_sha256) == 64
    assert row.params["window"] == 5 and row.params["forecaster"]["shrink"] == fit.forecaster.shrink


def test_latest_respects_through_and_follows_the_chain_to_the_last_retrain(
    migrated_url: str, closes: np.ndarray, fit: Fit
) -> None:
    updated = update(fit.forecaster, closes, TINY)
    with get_engine(migrated_url).begin() as conn:
        first = _save(conn, fit, 0)
        second = _save(conn, updated, 1, kind="update", parent=first)
        third = _save(conn, updated, 2, kind="update", parent=second)
        assert load_latest(conn, "TSLA", through=DAY - dt.timedelta(days=1)) is None
        assert load_latest(conn, "OTHER") is None
        at_second = load_latest(conn, "TSLA", through=DAY + dt.timedelta(days=1))
        latest = load_latest(conn, "TSLA")
    assert at_second is not None and at_second.version_id == second
    assert latest is not None and latest.version_id == third and latest.kind == "update"
    assert latest.last_retrain_through == DAY
    assert latest.forecaster.forecast(closes) == updated.forecaster.forecast(closes)


def test_only_the_newest_versions_keep_their_artifacts(migrated_url: str, fit: Fit) -> None:
    with get_engine(migrated_url).begin() as conn:
        ids = [_save(conn, fit, day, keep=2) for day in range(4)]
        rows = conn.execute(
            sa.select(model_versions.c.id, model_versions.c.artifact.is_not(None)).order_by(
                model_versions.c.id
            )
        ).all()
    assert [(row[0], bool(row[1])) for row in rows] == [
        (ids[0], False),
        (ids[1], False),
        (ids[2], True),
        (ids[3], True),
    ]


def test_a_batch_of_versions_keeps_the_same_artifacts_as_one_by_one(migrated_url: str, fit: Fit) -> None:
    """A backfill chunk stores its versions in one transaction: those with `keep` newer ones
    are written without bytes, the last prunes; the rows end as if each had pruned, and
    every version keeps its sha256."""
    with get_engine(migrated_url).begin() as conn:
        earlier = _save(conn, fit, 0, keep=2)
        ids = [_save(conn, fit, day, keep=2, newer=4 - day) for day in range(1, 5)]
        rows = conn.execute(
            sa.select(
                model_versions.c.id, model_versions.c.artifact, model_versions.c.artifact_sha256
            ).order_by(model_versions.c.id)
        ).all()
    assert [(row[0], row[1] is not None) for row in rows] == [
        (earlier, False), (ids[0], False), (ids[1], False), (ids[2], True), (ids[3], True),
    ]  # fmt: skip
    assert all(row[2] == fit.forecaster.artifact[1] for row in rows)
    with get_engine(migrated_url).connect() as conn:
        assert load_latest(conn, "TSLA").version_id == ids[3]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ({"artifact": b"not a model"}, "sha256 mismatch"),
        ({"artifact": None}, "missing"),
    ],
)
def test_a_damaged_artifact_raises_artifact_error(
    migrated_url: str, fit: Fit, damage: dict, message: str
) -> None:
    with get_engine(migrated_url).begin() as conn:
        version = _save(conn, fit, 0)
        conn.execute(model_versions.update().where(model_versions.c.id == version).values(**damage))
        with pytest.raises(ArtifactError, match=message) as info:
            load_latest(conn, "TSLA")
    text = str(info.value)
    assert text.startswith("TSLA: ") and f"version {version}" in text and "\n" not in text


def test_bytes_that_match_their_sha_but_are_no_model_raise_artifact_error(
    migrated_url: str, fit: Fit
) -> None:
    from job.forecast.model.artifact import sha256

    junk = b"PK\x03\x04 not really a zip"
    with get_engine(migrated_url).begin() as conn:
        version = _save(conn, fit, 0)
        conn.execute(
            model_versions.update()
            .where(model_versions.c.id == version)
            .values(artifact=junk, artifact_sha256=sha256(junk))
        )
        with pytest.raises(ArtifactError, match=f"TSLA: model version {version}: artifact unreadable"):
            load_latest(conn, "TSLA")


def test_artifacts_are_the_same_bytes_whenever_they_are_written(
    fit: Fit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No clock in the bytes: the same model has one sha256, in any run and any process."""
    import time

    from job.forecast.model import artifact

    first = artifact.pack(fit.forecaster)
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)  # zip would stamp entries with it
    monkeypatch.setattr(time, "localtime", lambda *_: time.struct_time((2033, 5, 18, 3, 33, 20, 2, 138, 0)))
    assert artifact.pack(fit.forecaster) == first
    loaded = type(fit.forecaster).unpack(first)
    assert all(np.array_equal(a, b) for a, b in zip(loaded.weights, fit.forecaster.weights, strict=True))
    with np.load(io.BytesIO(first)) as npz:  # a plain .npz to numpy
        assert json.loads(npz["forecaster.json"])["format"] == "nightcast-forecaster/3"
        assert np.array_equal(npz["00_lstm_kernel"], fit.forecaster.weights[0])
