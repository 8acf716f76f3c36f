"""The APScheduler service, driven for real against a real database."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from apscheduler.triggers.interval import IntervalTrigger

from job.db import get_engine, job_runs, predictions
from job.scheduler import NightlyService, heartbeat_age
from tests.conftest import tiny_model_env, tiny_settings

FRIDAY_EVENING = datetime(2020, 7, 31, 23, 0, tzinfo=UTC)  # 19:00 in New York, after the close
SATURDAY_EVENING = datetime(2020, 8, 1, 23, 0, tzinfo=UTC)


def _runs(url: str) -> list[tuple[str, dict]]:
    with get_engine(url).connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(job_runs.c.status, job_runs.c.details))]


@pytest.mark.slow
def test_the_real_scheduler_fires_real_cycles(migrated_url: str, tmp_path: Path) -> None:
    settings = tiny_settings(migrated_url, heartbeat_file=tmp_path / "heartbeat")
    service = NightlyService(settings, trigger=IntervalTrigger(seconds=1), clock=lambda: FRIDAY_EVENING)
    service.scheduler.start()
    try:
        deadline = time.monotonic() + 120
        while len([s for s, _ in _runs(migrated_url) if s == "succeeded"]) < 2:
            assert time.monotonic() < deadline, f"no two cycles completed: {_runs(migrated_url)}"
            time.sleep(0.2)
    finally:
        service.stop.set()
        service.scheduler.shutdown(wait=True)
    first, second = _runs(migrated_url)[:2]
    assert first[1]["TSLA"]["sessions"] == 1
    assert second[1]["TSLA"]["sessions"] == 0  # the evening was already forecast
    with get_engine(migrated_url).connect() as conn:
        targets = conn.execute(sa.select(predictions.c.target_date).distinct()).scalars().all()
    assert [str(t) for t in targets] == ["2020-08-03"]
    assert 0 <= heartbeat_age(settings.heartbeat_file, FRIDAY_EVENING) < 5


def test_days_that_are_not_sessions_are_skipped(migrated_url: str, tmp_path: Path) -> None:
    settings = tiny_settings(migrated_url, heartbeat_file=tmp_path / "heartbeat")
    NightlyService(settings, clock=lambda: SATURDAY_EVENING).fire()
    assert _runs(migrated_url) == []


def test_start_up_catches_up_only_when_the_database_is_behind(migrated_url: str, tmp_path: Path) -> None:
    settings = tiny_settings(migrated_url, heartbeat_file=tmp_path / "heartbeat")
    service = NightlyService(settings, clock=lambda: FRIDAY_EVENING)
    assert service.has_gap()
    service.run_cycle()
    assert not service.has_gap()


def test_default_trigger_is_weekday_evenings_in_new_york(migrated_url: str) -> None:
    job = NightlyService(tiny_settings(migrated_url)).scheduler.get_job("nightly")
    assert str(job.trigger) == ("cron[month='*', day='*', day_of_week='mon-fri', hour='18', minute='30']")
    assert str(job.trigger.timezone) == "America/New_York"
    assert job.misfire_grace_time == 6 * 3600 and job.coalesce and job.max_instances == 1


@pytest.mark.slow
def test_sigterm_stops_the_service_cleanly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'service.db'}"
    env = {
        **os.environ,  # the caller's settings are gone (conftest)
        "NIGHTCAST_DATABASE_URL": url,
        "NIGHTCAST_SOURCE": "sample",
        "NIGHTCAST_HISTORY_START": "2019-06-01",
        "NIGHTCAST_HEARTBEAT_FILE": str(tmp_path / "heartbeat"),
        **tiny_model_env(),
    }
    cli = [sys.executable, "-m", "job"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True, cwd=tmp_path)
    service = subprocess.Popen(
        [*cli, "schedule", "--run-now"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    assert service.stderr is not None
    lines = []
    for line in service.stderr:
        lines.append(line)
        if "scheduler started" in line:
            break
    service.send_signal(signal.SIGTERM)
    _, rest = service.communicate(timeout=120)
    assert service.returncode == 0, "".join(lines) + rest
    assert "stop requested" in rest and "scheduler stopped" in rest
    assert all(status != "running" for status, _ in _runs(url))


def test_the_service_logs_when_the_next_cycle_fires(
    migrated_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = tiny_settings(migrated_url, heartbeat_file=tmp_path / "heartbeat")
    service = NightlyService(settings, clock=lambda: FRIDAY_EVENING)
    with caplog.at_level(logging.INFO, logger="job.scheduler"):
        service.log_next_run()
    assert "next cycle: 2020-08-03T18:30-04:00" in caplog.text  # Friday's has passed: Monday's
