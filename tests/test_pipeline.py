"""The nightly cycle on real sample data, on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from job.cli import main
from job.db import get_engine, job_runs
from job.ingest.sources import source_for
from job.persist.steps import save_steps
from job.pipeline import Cycle
from tests.conftest import SAMPLE_CSV, tiny_settings

WEEK = [date(2020, 7, 27), date(2020, 7, 28), date(2020, 7, 29), date(2020, 7, 30), date(2020, 7, 31)]


def cycle(url: str, **overrides: object) -> Cycle:
    settings = tiny_settings(url, **overrides)
    return Cycle(settings, source_for(settings))


def rows(url: str, sql: str) -> list[tuple]:
    with get_engine(url).connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


PREDICTIONS = (
    "SELECT ticker, target_date, model, as_of_date, predicted_close, model_version_id, lower_80, upper_80, "
    "lower_95, upper_95, network_close, scale, network_scale, scale_source FROM predictions "
    "ORDER BY ticker, target_date, model"
)
METRICS = "SELECT * FROM rolling_metrics ORDER BY ticker, date, model, window_days"


def test_two_evenings_leave_forecasts_and_metrics(migrated_url: str) -> None:
    assert cycle(migrated_url).nightly(["TSLA"], as_of=date(2020, 7, 30)).status == "succeeded"
    report = cycle(migrated_url).nightly(["TSLA"], as_of=date(2020, 7, 31))
    assert report.status == "succeeded"
    forecasts = rows(migrated_url, "SELECT target_date, model, as_of_date FROM predictions")
    as_text = sorted((str(t), m, str(a)) for t, m, a in forecasts)
    assert as_text == [
        ("2020-07-31", "lstm", "2020-07-30"),
        ("2020-07-31", "naive", "2020-07-30"),
        ("2020-08-03", "lstm", "2020-07-31"),  # Friday -> Monday: the exchange calendar
        ("2020-08-03", "naive", "2020-07-31"),
    ]
    metrics = rows(migrated_url, "SELECT date, model, window_days, n FROM rolling_metrics")
    assert sorted((str(d), m, w, n) for d, m, w, n in metrics) == [
        ("2020-07-31", model, window, 1) for model in ("lstm", "naive") for window in (5, 20, 60)
    ]
    naive = rows(
        migrated_url,
        "SELECT predicted_close FROM predictions WHERE model = 'naive' AND target_date = '2020-08-03'",
    )
    assert naive == [(pytest.approx(286.152008),)]  # the last known close


def test_rerunning_an_evening_changes_nothing(migrated_url: str) -> None:
    cycle(migrated_url).nightly(["TSLA"], as_of=date(2020, 7, 31))
    before = rows(migrated_url, PREDICTIONS), rows(migrated_url, METRICS)
    versions = rows(migrated_url, "SELECT COUNT(*) FROM model_versions")
    report = cycle(migrated_url).nightly(["TSLA"], as_of=date(2020, 7, 31))
    assert report.status == "succeeded" and report.tickers[0].sessions == 0
    assert (rows(migrated_url, PREDICTIONS), rows(migrated_url, METRICS)) == before
    assert rows(migrated_url, "SELECT COUNT(*) FROM model_versions") == versions


def test_day_by_day_equals_one_catch_up(migrated_url: str, make_db) -> None:
    other = make_db()
    for day in WEEK:
        assert cycle(migrated_url).nightly(["TSLA"], as_of=day).status == "succeeded"
    cycle(other).nightly(["TSLA"], as_of=WEEK[0])
    report = cycle(other).nightly(["TSLA"], as_of=WEEK[-1])  # the job was down for four nights
    assert report.tickers[0].sessions == 4
    assert rows(other, PREDICTIONS) == rows(migrated_url, PREDICTIONS)
    assert rows(other, METRICS) == rows(migrated_url, METRICS)
    assert len(rows(other, METRICS)) == 4 * 2 * 3


def test_nightly_runs_equal_a_backfill_of_the_same_sessions_row_for_row(migrated_url: str, make_db) -> None:
    """Intervals included: their state (recent errors, misses) is derived from stored rows the
    same way a replay carries it along."""
    backfilled = make_db()
    assert cycle(backfilled).backfill(["TSLA"], start=WEEK[1], as_of=WEEK[-1]).status == "succeeded"
    for day in WEEK:
        assert cycle(migrated_url).nightly(["TSLA"], as_of=day).status == "succeeded"
    assert rows(migrated_url, PREDICTIONS) == rows(backfilled, PREDICTIONS)
    assert rows(migrated_url, METRICS) == rows(backfilled, METRICS)
    assert all(None not in r for r in rows(migrated_url, PREDICTIONS) if r[2] == "lstm")


def test_rolling_rmse_matches_an_independent_computation(migrated_url: str) -> None:
    for day in WEEK:
        cycle(migrated_url).nightly(["TSLA"], as_of=day)
    pairs = rows(
        migrated_url,
        "SELECT p.target_date, p.model, p.predicted_close, a.close FROM predictions p "
        "JOIN prices a ON a.ticker = p.ticker AND a.date = p.target_date ORDER BY p.target_date",
    )
    for model in ("lstm", "naive"):
        errors = np.array([pred - actual for _, m, pred, actual in pairs if m == model])
        actual = np.array([a for _, m, _, a in pairs if m == model])
        stored = rows(
            migrated_url,
            f"SELECT n, rmse, mae, mape FROM rolling_metrics WHERE model = '{model}' "
            "AND window_days = 5 ORDER BY date DESC LIMIT 1",
        )[0]
        assert stored[0] == len(errors) == 4
        assert stored[1] == pytest.approx(np.sqrt(np.mean(errors**2)), rel=1e-12)
        assert stored[2] == pytest.approx(np.mean(np.abs(errors)), rel=1e-12)
        assert stored[3] == pytest.approx(100 * np.mean(np.abs(errors) / actual), rel=1e-12)


def _csv_dir(tmp_path: Path, good: list[str], bad: list[str]) -> Path:
    folder = tmp_path / "csv"
    folder.mkdir()
    for ticker in good:
        shutil.copy(SAMPLE_CSV, folder / f"{ticker}.csv")
    for ticker in bad:
        (folder / f"{ticker}.csv").write_text("Date,Open,High\nnot-a-date,1,2\n")
    return folder


def test_a_failing_ticker_leaves_the_others_done_and_the_run_partial(
    migrated_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _csv_dir(tmp_path, ["AAA"], ["BAD"])
    code = main(
        [
            "run",
            "--database-url",
            migrated_url,
            "--source",
            "csv",
            "--csv",
            str(folder),
            "--tickers",
            "BAD,AAA",
            "--as-of",
            "2020-07-31",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "BAD" in err and err.count("BAD") >= 1
    assert rows(migrated_url, "SELECT DISTINCT ticker FROM predictions") == [("AAA",)]
    assert rows(migrated_url, "SELECT status FROM job_runs") == [("partial",)]


def test_a_crash_after_the_first_ticker_loses_nothing_and_the_rerun_completes(
    migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _csv_dir(tmp_path, ["AAA", "BBB"], [])
    crashing = cycle(migrated_url, source="csv", csv_path=folder)
    original = save_steps

    def crash_on_second(claims: object, ticker: str, *args: object, **kwargs: object) -> list[int]:
        if ticker == "BBB":
            raise KeyboardInterrupt
        return original(claims, ticker, *args, **kwargs)  # type: ignore[arg-type]

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr("job.pipeline.save_steps", crash_on_second)
        crashing.nightly(["AAA", "BBB"], as_of=date(2020, 7, 31))
    assert rows(migrated_url, "SELECT DISTINCT ticker FROM predictions") == [("AAA",)]
    # prices were ingested, and committed, before any model ran: they survive the crash
    counts = rows(migrated_url, "SELECT ticker, COUNT(*) FROM prices GROUP BY ticker ORDER BY ticker")
    assert counts == [("AAA", 399), ("BBB", 399)]  # history_start 2019-01-01 .. 2020-07-31
    with get_engine(migrated_url).connect() as conn:
        assert conn.execute(sa.select(job_runs.c.status)).scalar_one() == "failed"
    kept = rows(migrated_url, PREDICTIONS)
    rerun = cycle(migrated_url, source="csv", csv_path=folder)
    report = rerun.nightly(["AAA", "BBB"], as_of=date(2020, 7, 31))
    assert report.status == "succeeded"
    assert [t.sessions for t in report.tickers] == [0, 1]
    assert [r for r in rows(migrated_url, PREDICTIONS) if r[0] == "AAA"] == kept


def test_a_session_that_fails_to_store_stops_its_ticker_without_a_hole(
    migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write failing mid-ticker fails that ticker; its later sessions are not stored after
    the gap, so a rerun resumes exactly at the failed session."""
    folder = _csv_dir(tmp_path, ["AAA"], [])
    calls = {"n": 0}

    def fail_third(claims: object, ticker: str, *args: object, **kwargs: object) -> list[int]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return save_steps(claims, ticker, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("job.pipeline.save_steps", fail_third)
    report = cycle(migrated_url, source="csv", csv_path=folder).backfill(
        ["AAA"], start=date(2020, 7, 20), as_of=date(2020, 7, 31)
    )
    assert report.tickers[0].status == "failed" and "disk full" in (report.tickers[0].error or "")
    as_of = [
        r[0]
        for r in rows(migrated_url, "SELECT as_of_date FROM predictions WHERE model = 'naive' ORDER BY 1")
    ]
    assert [str(d) for d in as_of] == ["2020-07-17", "2020-07-20"]
