"""`nightcast status` per ticker: last session, next forecast, model age and current skill."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from job.cli import main
from job.config import Settings
from job.db import get_engine, model_versions, predictions, prices, rolling_metrics
from job.db.migrate import head_revision
from job.status import render_status

CREATED = datetime(2020, 8, 1, 1, 0, tzinfo=UTC)


def price(ticker: str, day: str, close: float) -> dict[str, object]:
    return {
        "ticker": ticker,
        "date": date.fromisoformat(day),
        **dict.fromkeys(("open", "high", "low", "close", "adj_close"), close),
        "volume": 1,
        "source": "csv",
        "ingested_at": CREATED,
    }


def forecast(target: str, model: str, as_of: str, value: float, version: int | None) -> dict[str, object]:
    return {
        "ticker": "TSLA",
        "target_date": date.fromisoformat(target),
        "model": model,
        "as_of_date": date.fromisoformat(as_of),
        "predicted_close": value,
        "model_version_id": version,
        "created_at": CREATED,
    }


def version(id_: int, kind: str, through: str) -> dict[str, object]:
    return {
        "id": id_,
        "ticker": "TSLA",
        "kind": kind,
        "parent_id": None,
        "trained_from": date(2019, 1, 2),
        "trained_through": date.fromisoformat(through),
        "n_samples": 100,
        "epochs": 1,
        "params": {},
        "artifact_sha256": "0" * 64,
        "created_at": CREATED,
    }


def metric(day: str, model: str, window: int, n: int, rmse: float) -> dict[str, object]:
    return {
        "ticker": "TSLA",
        "date": date.fromisoformat(day),
        "model": model,
        "window_days": window,
        "n": n,
        "rmse": rmse,
        "mae": rmse,
        "mape": 1.0,
    }


@pytest.fixture
def stored(migrated_url: str) -> str:
    with get_engine(migrated_url).begin() as conn:
        conn.execute(
            sa.insert(prices),
            [
                price("TSLA", "2020-07-29", 100),
                price("TSLA", "2020-07-30", 200),
                price("TSLA", "2020-07-31", 250),
            ],
        )
        conn.execute(sa.insert(prices), [price("AAPL", "2020-07-31", 400)])
        conn.execute(
            sa.insert(model_versions),
            # 3: a backfill of older sessions, run later: newer row, but no current forecast is its
            [
                version(1, "retrain", "2020-07-29"),
                version(2, "update", "2020-07-30"),
                version(3, "retrain", "2020-07-10"),
            ],
        )
        conn.execute(
            sa.insert(predictions),
            [
                forecast("2020-07-31", "lstm", "2020-07-30", 205, 2),
                forecast("2020-07-31", "naive", "2020-07-30", 200, None),
                forecast("2020-08-03", "lstm", "2020-07-31", 255, 2),
                forecast("2020-08-03", "naive", "2020-07-31", 250, None),
            ],
        )
        conn.execute(
            sa.insert(rolling_metrics),
            [
                metric("2020-07-30", "lstm", 20, 20, 9.0),
                metric("2020-07-30", "naive", 20, 20, 9.5),
                metric("2020-07-31", "lstm", 20, 20, 12.0),
                metric("2020-07-31", "naive", 20, 20, 10.0),
                metric("2020-07-31", "lstm", 60, 40, 1.0),  # not the skill window: not shown
                metric("2020-07-31", "naive", 60, 40, 1.0),
            ],
        )
    return migrated_url


def test_status_per_ticker_reads_the_views(stored: str) -> None:
    text = render_status(Settings(database_url=stored), now=datetime(2020, 8, 3, 7, 0, tzinfo=UTC))
    assert text.splitlines()[1:] == [
        f"schema:   revision {head_revision(stored)}",
        "AAPL:",
        "  prices:   1 rows, last session 2020-07-31",
        "  forecast: none yet",
        "  model:    none trained yet",
        "  skill:    no matured forecasts yet",
        "TSLA:",
        "  prices:   3 rows, last session 2020-07-31",
        "  forecast: 2020-08-03 (as of 2020-07-31): lstm 255.00 (+2.00%), naive 250.00 (+0.00%)",
        "  model:    #2 update, trained through 2020-07-30 (1 sessions behind prices), "
        "created 2020-08-01 01:00 UTC, 2d ago",
        "  skill:    20-session RMSE lstm 12.0000 vs naive 10.0000, ratio 1.200 (to 2020-07-31)",
        "last run: none",
    ]


def test_status_falls_back_to_the_largest_window_and_flags_a_partial_one(stored: str) -> None:
    settings = Settings(database_url=stored, policy={"skill_window": 10})
    text = render_status(settings, now=datetime(2020, 8, 1, 1, 30, tzinfo=UTC))
    assert (
        "  skill:    60-session RMSE lstm 1.0000 vs naive 1.0000, ratio 1.000 "
        "(to 2020-07-31, only 40 sessions so far)"
    ) in text.splitlines()
    assert "created 2020-08-01 01:00 UTC, 30m ago" in text


def test_status_command_prints_the_forecast(stored: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--database-url", stored]) == 0
    out = capsys.readouterr().out
    assert "forecast: 2020-08-03 (as of 2020-07-31): lstm 255.00 (+2.00%)" in out


def test_status_shows_intervals_and_the_evidence_behind_the_skill(stored: str) -> None:
    with get_engine(stored).begin() as conn:
        conn.execute(
            sa.update(predictions)
            .where(predictions.c.target_date == date(2020, 8, 3), predictions.c.model == "lstm")
            .values(lower_80=245.0, upper_80=265.0, lower_95=240.0, upper_95=270.5)
            .values(scale=0.0123, network_scale=0.015, scale_source="baseline")
        )
        conn.execute(
            sa.update(rolling_metrics)
            .where(rolling_metrics.c.date == date(2020, 7, 31), rolling_metrics.c.window_days == 20)
            .values(dm_pvalue=0.8123, hit_rate=0.45, up_rate=0.55, coverage_80=0.8, coverage_95=0.95)
        )
    lines = render_status(
        Settings(database_url=stored), now=datetime(2020, 8, 3, 7, 0, tzinfo=UTC)
    ).splitlines()
    assert (
        "  forecast: 2020-08-03 (as of 2020-07-31): lstm 255.00 (+2.00%) [95%: 240.00..270.50], "
        "naive 250.00 (+0.00%)"
    ) in lines
    assert "  scale:    1.23% a session from the baseline (the network's own: 1.50%)" in lines
    assert (
        "  skill:    20-session RMSE lstm 12.0000 vs naive 10.0000, ratio 1.200, DM p 0.81, "
        "hit rate 45% (always-up 55%), coverage 80% of 80%, 95% of 95% (to 2020-07-31)"
    ) in lines
