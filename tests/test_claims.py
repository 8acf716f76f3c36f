"""Per-ticker claims: one cycle per ticker (per database on SQLite), none outliving its holder,
and a holder that notices a lost claim before it commits again."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from job.cli import main
from job.db.claims import Claims
from job.db.migrate import upgrade_to_head
from job.errors import ClaimLost
from tests.commands import command_line
from tests.conftest import PG_URL, SAMPLE_CSV, tiny_model_env
from tests.scratch import scratch_schema

HOLD = """
import sys, time
from job.db.claims import Claims
with Claims(sys.argv[1]) as claims:
    print(",".join(claims.take(sys.argv[2].split(","), wait=False)), flush=True)
    time.sleep(120)
"""


def test_a_claimed_ticker_is_refused_to_a_second_holder(migrated_url: str) -> None:
    with Claims(migrated_url) as first, Claims(migrated_url) as second:
        assert first.take(["AAA", "BBB"], wait=False) == ["AAA", "BBB"]
        assert second.take(["AAA"], wait=False) == []
        first.release("AAA")
        if first.postgres:  # per ticker on PostgreSQL: released is free, the rest stays held
            assert second.take(["AAA", "BBB", "CCC"], wait=False) == ["AAA", "CCC"]
    with Claims(migrated_url) as third:  # all released on exit
        assert third.take(["AAA", "BBB"], wait=False) == ["AAA", "BBB"]


def test_postgresql_claims_are_per_ticker(pg_url: str) -> None:
    with Claims(pg_url) as first, Claims(pg_url) as second:
        assert first.take(["AAA"], wait=False) == ["AAA"]
        assert second.take(["AAA", "BBB"], wait=False) == ["BBB"]


def test_wait_blocks_until_the_holder_lets_go(migrated_url: str) -> None:
    acquired_at: list[float] = []

    def second() -> None:
        with Claims(migrated_url) as claims:
            claims.take(["AAA"], wait=True)
            acquired_at.append(time.monotonic())

    with Claims(migrated_url) as first:
        first.take(["AAA"], wait=False)
        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.5)
        assert not acquired_at
        released_at = time.monotonic()
    waiter.join(10)
    assert acquired_at and acquired_at[0] >= released_at


@pytest.mark.slow
def test_a_killed_holder_leaves_no_stale_claim(migrated_url: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, migrated_url, "AAA"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "AAA"
        with Claims(migrated_url) as claims:
            assert claims.take(["AAA"], wait=False) == []
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while True:  # the server (or the OS) notices the dead holder within moments
        with Claims(migrated_url) as claims:
            if claims.take(["AAA"], wait=False) == ["AAA"]:
                break
        assert time.monotonic() < deadline, "claim still held after its holder was killed"
        time.sleep(0.1)


def test_a_terminated_session_is_noticed_before_the_next_commit(pg_url: str) -> None:
    with Claims(pg_url) as claims:
        claims.take(["AAA"], wait=False)
        claims.verify("AAA")  # held: passes
        pid = claims.conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        claims.conn.commit()
        with sa.create_engine(pg_url, poolclass=sa.NullPool).connect() as admin:
            admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with Claims(pg_url) as other:  # the claim died with the session: another cycle takes it
            deadline = time.monotonic() + 10
            while other.take(["AAA"], wait=False) != ["AAA"]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            with pytest.raises(ClaimLost, match="AAA"):
                claims.conn.rollback()
                claims.verify("AAA")
            with pytest.raises(ClaimLost, match="AAA"):  # and again, on a reconnected session
                claims.verify("AAA")
    with pytest.raises(ClaimLost, match="BBB"), Claims(pg_url) as never:
        never.verify("BBB")


def _folder(tmp_path: Path, tickers: list[str]) -> Path:
    folder = tmp_path / "csv"
    folder.mkdir(exist_ok=True)
    for ticker in tickers:
        shutil.copy(SAMPLE_CSV, folder / f"{ticker}.csv")
    return folder


def _cli(url: str, folder: Path, command: str, tickers: list[str], *extra: str) -> list[str]:
    return command_line(command, url, folder, tickers, *extra)


def _count(url: str, sql: str) -> list[tuple]:
    from job.db import get_engine

    with get_engine(url).connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def test_a_cycle_works_the_free_tickers_and_reports_the_claimed_ones_busy(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in {**tiny_model_env(), "NIGHTCAST_HISTORY_START": "2019-01-01"}.items():
        monkeypatch.setenv(key, value)
    folder = _folder(tmp_path, ["AAA", "BBB", "CCC"])
    with Claims(pg_url) as other:  # another cycle is working AAA
        assert other.take(["AAA"], wait=False) == ["AAA"]
        assert main(_cli(pg_url, folder, "run", ["AAA", "BBB", "CCC"], "--as-of", "2020-07-31")) == 1
    err = capsys.readouterr().err
    assert "AAA: another nightcast cycle on" in err and "pass --wait" in err
    assert _count(pg_url, "SELECT DISTINCT ticker FROM predictions ORDER BY ticker") == [("BBB",), ("CCC",)]
    details = _count(pg_url, "SELECT status FROM job_runs")
    assert details == [("partial",)]
    # ...and once it is free, the next run does AAA alone: the others are up to date
    assert main(_cli(pg_url, folder, "run", ["AAA", "BBB", "CCC"], "--as-of", "2020-07-31")) == 0
    assert _count(pg_url, "SELECT ticker, COUNT(*) FROM model_versions GROUP BY ticker ORDER BY ticker") == [
        ("AAA", 1), ("BBB", 1), ("CCC", 1)
    ]  # fmt: skip


@pytest.mark.slow
def test_two_concurrent_runs_split_the_tickers_without_overlap(pg_url: str, tmp_path: Path) -> None:
    import json
    import os

    tickers = ["AAA", "BBB", "CCC", "DDD"]
    folder = _folder(tmp_path, tickers)
    env = {**os.environ, **tiny_model_env(), "NIGHTCAST_HISTORY_START": "2019-01-01"}
    args = ["--as-of", "2020-07-31", "--wait"]
    runs = [
        subprocess.Popen([sys.executable, "-m", "job", *_cli(pg_url, folder, "run", order, *args)], env=env)
        for order in (tickers, tickers[::-1])
    ]
    assert [run.wait(300) for run in runs] == [0, 0]
    sessions = {
        run_id: {
            t: d["sessions"]
            for t, d in (details if isinstance(details, dict) else json.loads(details)).items()
        }
        for run_id, details in _count(pg_url, "SELECT id, details FROM job_runs ORDER BY id")
    }
    assert len(sessions) == 2
    for ticker in tickers:  # each ticker forecast by exactly one of the two runs
        assert sorted(s[ticker] for s in sessions.values()) == [0, 1], sessions
    assert _count(pg_url, "SELECT COUNT(*), COUNT(DISTINCT ticker) FROM model_versions") == [(4, 4)]


@pytest.mark.slow
def test_a_backfill_whose_claims_die_stops_before_its_next_commit(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Terminating the session that holds the claims: the backfill notices before its next
    commit and fails; a second backfill takes over; the rows equal an undisturbed run's."""
    import os

    folder = _folder(tmp_path, ["AAA", "BBB"])
    env = {**os.environ, **tiny_model_env(), "NIGHTCAST_HISTORY_START": "2019-01-01"}
    args = _cli(pg_url, folder, "backfill", ["AAA", "BBB"], "--start", "2020-03-02", "--end", "2020-05-29")
    first = subprocess.Popen([sys.executable, "-m", "job", *args], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _count(pg_url, "SELECT COUNT(*) FROM model_versions") < [(10,)]:
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    schema = pg_url.rsplit("%3D", 1)[1]
    killed = _count(
        pg_url,
        "SELECT pg_terminate_backend(pid) FROM (SELECT DISTINCT pid FROM pg_locks "
        f"WHERE locktype = 'advisory' AND granted AND classid = hashtext('{schema}')::oid) AS holders",
    )
    assert killed == [(True,)]  # one connection holds every claim of the backfill
    second = subprocess.run([sys.executable, "-m", "job", *args], env=env, capture_output=True, text=True)
    assert first.wait(120) == 1
    _, err = first.communicate()
    assert "no longer holds its claim" in err or "connection holding its claim was lost" in err
    assert second.returncode == 0, second.stderr
    assert _count(pg_url, "SELECT status FROM job_runs ORDER BY id") == [("failed",), ("succeeded",)]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with scratch_schema(PG_URL) as reference:
        upgrade_to_head(reference)
        assert main([args[0], "--database-url", reference, *args[3:]]) == 0
        versions = (
            "SELECT ticker, kind, trained_through, artifact_sha256 FROM model_versions ORDER BY 1, 3, 2"
        )
        assert _count(pg_url, versions) == _count(reference, versions)  # no session done twice
        forecasts = (
            "SELECT ticker, target_date, model, predicted_close, lower_95 FROM predictions ORDER BY 1, 2, 3"
        )
        assert _count(pg_url, forecasts) == _count(reference, forecasts)
