"""Backfill: walk-forward with no look-ahead, resumable, idempotent; SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from job.cli import main
from job.db import get_engine
from job.forecast.evaluate import update_rolling_metrics
from job.ingest.sources import make_source
from job.pipeline import Cycle
from tests.commands import command_line
from tests.conftest import SAMPLE_CSV, tiny_settings

START, TAMPER_AFTER, END = date(2020, 5, 1), date(2020, 5, 15), date(2020, 5, 29)
PREDICTIONS = (
    "SELECT ticker, target_date, model, as_of_date, predicted_close, lower_80, upper_80, lower_95, "
    "upper_95, network_close, scale, network_scale, scale_source FROM predictions "
    "ORDER BY ticker, target_date, model"
)
METRICS = "SELECT * FROM rolling_metrics ORDER BY ticker, date, model, window_days"
VERSIONS = (
    "SELECT id, ticker, kind, parent_id, trained_from, trained_through, n_samples, epochs, "
    "train_loss, val_loss, artifact_sha256 FROM model_versions ORDER BY id"
)


def rows(url: str, sql: str) -> list[tuple]:
    with get_engine(url).connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def snapshot(url: str) -> tuple[list[tuple], ...]:
    return rows(url, PREDICTIONS), rows(url, METRICS), rows(url, VERSIONS)


def write_csv(folder: Path, frame: pd.DataFrame) -> Path:
    folder.mkdir(exist_ok=True)
    frame.to_csv(folder / "TSLA.csv", index=False)
    return folder


def backfill_args(url: str, folder: Path, end: date = END) -> list[str]:
    return command_line(
        "backfill", url, folder, ["TSLA"], "--start", START.isoformat(), "--end", end.isoformat()
    )


@pytest.fixture
def sample_folder(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "real", pd.read_csv(SAMPLE_CSV))


def test_tampering_after_a_date_changes_no_forecast_up_to_it(
    migrated_url: str, make_db, tmp_path: Path, sample_folder: Path, tiny_env: dict[str, str]
) -> None:
    frame = pd.read_csv(SAMPLE_CSV)
    later = pd.to_datetime(frame["Date"]).dt.date > TAMPER_AFTER
    for column in ("Open", "High", "Low", "Close", "Adj Close"):
        frame.loc[later, column] *= 1.5  # a large change, below what job.ingest.anomalies flags
    frame.loc[later, "Volume"] *= 3  # the network reads volume too
    tampered_folder = write_csv(tmp_path / "tampered", frame)
    tampered = make_db()
    assert main(backfill_args(migrated_url, sample_folder)) == 0
    assert main(backfill_args(tampered, tampered_folder)) == 0

    def upto(url: str, sql: str, column: int) -> list[tuple]:
        return [r for r in rows(url, sql) if date.fromisoformat(str(r[column])) <= TAMPER_AFTER]

    honest = upto(migrated_url, PREDICTIONS, 1)
    assert len(honest) == 2 * 11  # targets 2020-05-01..2020-05-15, both models
    lstm, naive = honest[0::2], honest[1::2]
    assert all(a[4] != b[4] for a, b in zip(lstm, naive, strict=True))  # real model forecasts
    assert upto(tampered, PREDICTIONS, 1) == honest
    assert upto(tampered, METRICS, 1) == upto(migrated_url, METRICS, 1)
    # ...and the tampering is visible to forecasts made after it
    assert rows(tampered, PREDICTIONS)[-1] != rows(migrated_url, PREDICTIONS)[-1]


def test_interrupted_backfill_resumes_to_the_same_rows(
    migrated_url: str, make_db, sample_folder: Path, tiny_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = make_db()
    assert main(backfill_args(reference, sample_folder)) == 0

    settings = tiny_settings(migrated_url, source="csv", csv_path=sample_folder)
    done: list[str] = []

    def ctrl_c_on_the_seventh(*args: object, **kwargs: object) -> int:
        done.append("session")
        if len(done) == 7:  # inside the session's transaction, like a real Ctrl-C
            raise KeyboardInterrupt
        return update_rolling_metrics(*args, **kwargs)

    interrupted = Cycle(settings, make_source("csv", sample_folder))
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr("job.persist.steps.update_rolling_metrics", ctrl_c_on_the_seventh)
        interrupted.backfill(["TSLA"], start=START, as_of=END)
    assert len(rows(migrated_url, "SELECT * FROM predictions")) == 2 * 6
    assert main(backfill_args(migrated_url, sample_folder)) == 0
    assert snapshot(migrated_url)[:2] == snapshot(reference)[:2]


def test_rerunning_a_finished_backfill_changes_nothing(
    migrated_url: str, sample_folder: Path, tiny_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(backfill_args(migrated_url, sample_folder)) == 0
    before = snapshot(migrated_url), rows(migrated_url, "SELECT model_version_id FROM predictions")
    assert main(backfill_args(migrated_url, sample_folder)) == 0
    assert (snapshot(migrated_url), rows(migrated_url, "SELECT model_version_id FROM predictions")) == before


def test_summary_table_matches_plain_sql(
    migrated_url: str, sample_folder: Path, tiny_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(backfill_args(migrated_url, sample_folder)) == 0
    out = capsys.readouterr().out
    errors = rows(
        migrated_url,
        "SELECT model, SUM(error * error), COUNT(*) FROM prediction_errors "
        f"WHERE target_date BETWEEN '{START}' AND '{END}' GROUP BY model ORDER BY model",
    )
    (_, lstm_sse, n), (_, naive_sse, _) = errors
    lstm_rmse, naive_rmse = np.sqrt(lstm_sse / n), np.sqrt(naive_sse / n)
    line = next(line for line in out.splitlines() if "TSLA" in line)
    assert f"{lstm_rmse:.4f}" in line and f"{naive_rmse:.4f}" in line
    assert f"{lstm_rmse / naive_rmse:.4f}" in line
    assert re.search(rf"\b{n}\b", line)  # 20 target sessions in May 2020


@pytest.mark.slow
def test_killed_backfill_resumes_to_the_same_rows(
    migrated_url: str, make_db, sample_folder: Path, tiny_env: dict[str, str]
) -> None:
    reference = make_db()
    assert main(backfill_args(reference, sample_folder)) == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "job", *backfill_args(migrated_url, sample_folder)],
        env={**os.environ, **tiny_env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while len(rows(migrated_url, "SELECT * FROM predictions")) < 10:
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    process.kill()
    process.wait()
    assert len(rows(migrated_url, "SELECT * FROM predictions")) < len(rows(reference, PREDICTIONS))
    assert main(backfill_args(migrated_url, sample_folder)) == 0
    assert snapshot(migrated_url)[:2] == snapshot(reference)[:2]


def test_rolling_metrics_after_a_backfill_match_plain_sql(
    migrated_url: str, sample_folder: Path, tiny_env: dict[str, str]
) -> None:
    assert main(backfill_args(migrated_url, sample_folder)) == 0
    errors = rows(
        migrated_url,
        "SELECT target_date, model, error, abs_pct_error FROM prediction_errors ORDER BY target_date",
    )
    metrics = rows(migrated_url, "SELECT date, model, window_days, n, rmse, mae, mape FROM rolling_metrics")
    assert len(metrics) == 20 * 2 * 3  # every matured session, both models, windows 5/20/60
    for day, model, window, n, rmse, mae, mape in metrics:
        upto = [(e, p) for d, m, e, p in errors if m == model and str(d) <= str(day)][-window:]
        error = np.array([e for e, _ in upto])
        assert n == len(upto)
        assert rmse == pytest.approx(np.sqrt(np.mean(error**2)), rel=1e-12)
        assert mae == pytest.approx(np.mean(np.abs(error)), rel=1e-12)
        assert mape == pytest.approx(np.mean([p for _, p in upto]), rel=1e-12)


def test_interval_and_skill_metrics_are_what_their_plain_formulas_give(
    migrated_url: str, sample_folder: Path, tiny_env: dict[str, str]
) -> None:
    from scipy import stats

    assert main(backfill_args(migrated_url, sample_folder)) == 0
    matured = rows(
        migrated_url,
        "SELECT l.target_date, l.predicted_close, n.predicted_close, l.actual_close, "
        "l.lower_80, l.upper_80, l.lower_95, l.upper_95, n.lower_95, n.upper_95 "
        "FROM prediction_errors l JOIN prediction_errors n ON n.target_date = l.target_date "
        "AND n.model = 'naive' WHERE l.model = 'lstm' ORDER BY l.target_date",
    )
    assert all(None not in r for r in matured)  # every forecast carries its intervals
    metrics = rows(
        migrated_url,
        "SELECT date, model, window_days, coverage_80, coverage_95, width_95, winkler_95, dm_pvalue, "
        "hit_rate, up_rate FROM rolling_metrics WHERE window_days = 20",
    )
    for day, model, window, c80, c95, width, winkler, dm, hit, up in metrics:
        upto = np.array([r[1:] for r in matured if str(r[0]) <= str(day)][-window:], dtype=float)
        lstm, naive, y, l80, u80, l95, u95, nl95, nu95 = upto.T
        lo, hi = (l95, u95) if model == "lstm" else (nl95, nu95)
        assert c95 == pytest.approx(np.mean((lo <= y) & (y <= hi)), abs=1e-12)
        assert width == pytest.approx(np.mean(hi - lo), rel=1e-12)
        penalty = 40 * (np.clip(lo - y, 0, None) + np.clip(y - hi, 0, None))  # 2 / alpha, alpha 0.05
        assert winkler == pytest.approx(np.mean(hi - lo + penalty), rel=1e-12)
        if model == "naive":
            assert (dm, hit, up) == (None, None, None)
            continue
        assert c80 == pytest.approx(np.mean((l80 <= y) & (y <= u80)), abs=1e-12)
        d = (lstm - y) ** 2 - (naive - y) ** 2
        n, variance = len(d), np.mean((d - d.mean()) ** 2)
        if n < 3 or variance == 0:
            assert dm is None  # nothing to test
        else:
            dm_stat = (
                d.mean() / np.sqrt(variance / n) * np.sqrt((n - 1) / n)
            )  # Harvey-Leybourne-Newbold, h = 1
            assert dm == pytest.approx(stats.t.cdf(dm_stat, df=n - 1), rel=1e-9)
        calls = lstm != naive
        assert hit == pytest.approx(np.mean(np.sign(lstm - naive)[calls] == np.sign(y - naive)[calls]))
        assert up == pytest.approx(np.mean(y > naive))


def test_a_backfill_before_a_nightly_forecast_leaves_metrics_and_status_consistent(
    migrated_url: str, sample_folder: Path, tiny_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A night first (the ticker's first forecast, as of the last session), then a backfill of
    the weeks before it: every matured session has its metrics, the same as plain SQL gives,
    and `status` names the model behind the newest forecast, not the backfill's last one."""
    common = [
        "--database-url",
        migrated_url,
        "--source",
        "csv",
        "--csv",
        str(sample_folder),
        "--tickers",
        "TSLA",
    ]
    assert main(["run", *common, "--as-of", "2020-07-31"]) == 0
    nightly = rows(migrated_url, "SELECT model_version_id FROM predictions WHERE model = 'lstm'")
    assert main(["backfill", *common, "--start", "2020-07-01", "--end", "2020-07-31"]) == 0
    matured = rows(migrated_url, "SELECT DISTINCT target_date FROM prediction_errors ORDER BY target_date")
    evaluated = rows(migrated_url, "SELECT DISTINCT date FROM rolling_metrics ORDER BY date")
    assert evaluated == matured and str(matured[-1][0]) == "2020-07-31"
    newest = rows(
        migrated_url,
        "SELECT model, n, rmse FROM rolling_metrics WHERE date = '2020-07-31' AND window_days = 60 "
        "ORDER BY model",
    )
    by_sql = rows(
        migrated_url,
        "SELECT model, COUNT(*), SUM(error * error) FROM prediction_errors GROUP BY model ORDER BY model",
    )
    for (model, n, rmse), (_, count, sse) in zip(newest, by_sql, strict=True):
        assert n == count == 22 and rmse == pytest.approx(np.sqrt(sse / count), rel=1e-12), model
    capsys.readouterr()
    assert main(["status", "--database-url", migrated_url]) == 0
    assert f"model:    #{nightly[0][0]} retrain, trained through 2020-07-31" in capsys.readouterr().out


def test_a_backfill_around_stored_forecasts_leaves_metrics_as_a_full_recompute(
    migrated_url: str, make_db, sample_folder: Path, tiny_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Backfill mid-April first, then March to May around it: every metrics row the second
    run's forecasts reach, inside the stored stretch and one session past its end included,
    equals what recomputing the whole ticker from its stored forecasts gives."""
    monkeypatch.setenv("NIGHTCAST_METRIC_WINDOWS", "5")
    inner = [*backfill_args(migrated_url, sample_folder, end=date(2020, 4, 15))]
    inner[inner.index("--start") + 1] = "2020-04-01"
    assert main(inner) == 0
    outer = [*backfill_args(migrated_url, sample_folder, end=date(2020, 5, 15))]
    outer[outer.index("--start") + 1] = "2020-03-02"
    assert main(outer) == 0
    stored = rows(migrated_url, METRICS)
    with get_engine(migrated_url).begin() as conn:
        update_rolling_metrics(conn, "TSLA", [5], since=None)
    assert rows(migrated_url, METRICS) == stored
