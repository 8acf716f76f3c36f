"""What a hostile or careless user throws at nightcast: one clear line, nothing stored lost.

Oversized cells, settings that only a model would choke on, clocks that run ahead, files and
folders in the wrong place, concurrent migrations, databases from a newer nightcast.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from job.cli import main
from job.db import get_engine, job_runs, model_versions, price_flags
from job.db.migrate import head_revision, upgrade_to_head
from job.scheduler import write_heartbeat
from job.support.calendar import get_sessions
from job.support.clock import utcnow
from tests.commands import command_line
from tests.conftest import SAMPLE_CSV


def csv_folder(tmp_path: Path, text: str, ticker: str = "TSLA") -> Path:
    folder = tmp_path / "prices"
    folder.mkdir(exist_ok=True)
    (folder / f"{ticker}.csv").write_text(text)
    return folder


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


# --- D4: an oversized cell ------------------------------------------------------------------


def test_an_oversized_cell_is_quoted_by_a_short_prefix_and_its_length_everywhere(
    migrated_url: str, tmp_path: Path, tiny_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    huge = "7" * 1_000_000 + "x"
    lines = SAMPLE_CSV.read_text().splitlines()
    lines[-1] = lines[-1].rsplit(",", 1)[0] + "," + huge
    folder = csv_folder(tmp_path, "\n".join(lines) + "\n")
    assert main(command_line("run", migrated_url, folder)) == 1
    err = capsys.readouterr().err
    assert "(1000001 characters)" in err and len(err) < 2000
    with get_engine(migrated_url).connect() as conn:
        [message] = conn.execute(sa.select(price_flags.c.message)).scalars()
        [(error, details)] = conn.execute(sa.select(job_runs.c.error, job_runs.c.details)).all()
    for text in (message, error, json.dumps(details)):
        assert "(1000001 characters)" in text and len(text) < 2000
    assert main(["status", "--database-url", migrated_url]) == 0
    assert len(capsys.readouterr().out) < 3000


def test_an_oversized_ticker_or_date_on_the_command_line_is_quoted_short(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "--tickers", "A" * 100_000 + "!"]) == 2  # an option's value: a usage error
    assert "(100001 characters)" in one_error_line(capsys)
    assert main(["run", "--tickers", "TSLA", "--as-of", "2" * 100_000]) == 2
    assert len(one_error_line(capsys)) < 300


# --- D5: settings a model would choke on ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NIGHTCAST_MODEL__LSTM_UNITS", "[0,0]"),
        ("NIGHTCAST_MODEL__LSTM_UNITS", "[-1,5]"),
        ("NIGHTCAST_MODEL__SEED", "-7"),
        ("NIGHTCAST_MODEL__LEARNING_RATE", "inf"),
        ("NIGHTCAST_MODEL__UPDATE_LEARNING_RATE", "nan"),
        ("NIGHTCAST_POLICY__SKILL_THRESHOLD", "inf"),
    ],
)
def test_settings_a_model_would_choke_on_stop_the_command_before_the_database(
    name: str, value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(name, value)
    database = tmp_path / "fresh.db"
    assert main(["run", "--database-url", f"sqlite:///{database}", "--source", "sample"]) == 1
    assert one_error_line(capsys).startswith(f"error: setting {name}")
    assert not database.exists()


# --- D6: a heartbeat from the future -------------------------------------------------------------


def test_a_heartbeat_dated_in_the_future_is_not_healthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    beat = tmp_path / "beat"
    monkeypatch.setenv("NIGHTCAST_HEARTBEAT_FILE", str(beat))
    write_heartbeat(beat, utcnow() + dt.timedelta(hours=1))
    assert main(["health"]) == 1
    assert "in the future" in one_error_line(capsys)
    write_heartbeat(beat, utcnow() + dt.timedelta(seconds=20))  # a clock a little ahead is fine
    assert main(["health"]) == 0


# --- downloads that say less than they seem -----------------------------------------------------


def test_rows_dated_after_the_last_closed_session_are_named_not_dropped_silently(
    migrated_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    later = get_sessions("XNYS").next_session(dt.date.today() + dt.timedelta(days=7))
    text = SAMPLE_CSV.read_text() + f"{later},10,11,9,10,10,1000\n"
    assert main(command_line("ingest", migrated_url, csv_folder(tmp_path, text))) == 0
    out = capsys.readouterr().out
    assert f"{later}" in out and "after the last closed session" in out


def test_a_file_with_only_a_header_is_an_error(
    migrated_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = csv_folder(tmp_path, SAMPLE_CSV.read_text().splitlines()[0] + "\n")
    assert main(command_line("ingest", migrated_url, folder)) == 1
    assert "holds no price rows" in capsys.readouterr().err


def test_sessions_missing_from_a_download_are_warned(
    migrated_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pd.read_csv(SAMPLE_CSV)
    frame = frame[~frame["Date"].isin(["2015-03-02", "2015-03-03"])]
    folder = csv_folder(tmp_path, frame.to_csv(index=False))
    assert main(command_line("ingest", migrated_url, folder)) == 0
    out = capsys.readouterr().out
    assert "2 sessions of XNYS missing" in out and "2015-03-02" in out


def test_a_backfill_starting_after_the_last_stored_session_is_refused(
    migrated_url: str, tiny_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["backfill", "--database-url", migrated_url, "--source", "sample", "--tickers", "TSLA"]
    assert main([*args, "--start", "2021-01-04"]) == 1
    assert "after the last stored session 2020-07-31" in capsys.readouterr().err
    with get_engine(migrated_url).connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM predictions")) == 0


# --- runs, migrations, models --------------------------------------------------------------------


def test_status_tells_a_run_whose_process_died(migrated_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with get_engine(migrated_url).begin() as conn:
        conn.execute(
            sa.insert(job_runs).values(
                kind="run", status="running", started_at=utcnow(), tickers=["TSLA"],
                details={"claim": "run/gone"},
            )
        )  # fmt: skip
    assert main(["status", "--database-url", migrated_url]) == 0
    assert "abandoned: the process died" in capsys.readouterr().out
    assert main(["status", "--database-url", migrated_url, "--json"]) == 0
    last_run = json.loads(capsys.readouterr().out)["last_run"]
    assert (last_run["status"], last_run["abandoned"]) == ("running", True)


def test_two_migrations_at_once_both_succeed(db_url: str) -> None:
    start, failures = threading.Barrier(2), []

    def migrate() -> None:
        start.wait()
        try:
            upgrade_to_head(db_url)
        except Exception as exc:
            failures.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with get_engine(db_url).connect() as conn:
        assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == head_revision(db_url)


def test_a_database_from_a_newer_nightcast_is_named_as_such(
    migrated_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with get_engine(migrated_url).begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    assert main(["migrate", "--database-url", migrated_url]) == 1
    assert "newer nightcast" in one_error_line(capsys)
    assert main(["run", "--database-url", migrated_url, "--source", "sample"]) == 1
    assert "newer nightcast" in one_error_line(capsys)
    assert main(["status", "--database-url", migrated_url]) == 0
    assert "newer nightcast" in capsys.readouterr().out


def test_a_training_that_diverges_fails_its_ticker_and_stores_no_model(
    migrated_url: str,
    tiny_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NIGHTCAST_MODEL__LEARNING_RATE", "1e30")
    assert main(["run", "--database-url", migrated_url, "--source", "sample", "--tickers", "TSLA"]) == 1
    assert "diverged" in capsys.readouterr().err
    with get_engine(migrated_url).connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(model_versions)) == 0


def test_unreadable_model_params_do_not_stop_the_next_backfill(
    migrated_url: str, tiny_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["backfill", "--database-url", migrated_url, "--source", "sample", "--tickers", "TSLA"]
    assert main([*args, "--start", "2020-07-20", "--end", "2020-07-24"]) == 0
    garbage = "'not json at all'" if migrated_url.startswith("sqlite") else "'\"not the params\"'"
    with get_engine(migrated_url).begin() as conn:
        conn.execute(sa.text(f"UPDATE model_versions SET params = {garbage}"))
    assert main([*args, "--start", "2020-07-20", "--end", "2020-07-31"]) == 0


# --- settings and paths named in the error --------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        ({"NIGHTCAST_DASK_ADDRESS": "notaurl"}, ["status"], "setting NIGHTCAST_DASK_ADDRESS"),
        ({"NIGHTCAST_MODEL": "garbage"}, ["status"], "setting NIGHTCAST_MODEL"),
        ({"NIGHTCAST_HEARTBEAT_FILE": "missing/beat"}, ["schedule"], "NIGHTCAST_HEARTBEAT_FILE"),
        ({"NIGHTCAST_HEARTBEAT_FILE": "."}, ["health"], "NIGHTCAST_HEARTBEAT_FILE"),
        ({}, ["export", "--ticker", "TSLA", "--out", "missing/model.keras"], "--out missing/model.keras"),
        ({}, ["export", "--ticker", "TSLA", "--out", "folder.keras"], "--out folder.keras"),
        ({}, ["report", "--tickers", "TSLA", "--out", "file.txt"], "--out file.txt"),
    ],
)
def test_settings_files_and_folders_are_named_in_the_error(
    env: dict[str, str],
    args: list[str],
    expected: str,
    migrated_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "folder.keras").mkdir()
    (tmp_path / "file.txt").write_text("not a folder")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code = 2 if expected.startswith("--") else 1  # an option's value: a usage error
    assert main([*args, "--database-url", migrated_url] if args[0] != "health" else args) == code
    assert expected in one_error_line(capsys)


def test_a_dotenv_that_is_not_text_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".env").write_bytes(bytes(range(128, 256)) * 3)
    assert main(["status"]) == 1
    assert ".env" in one_error_line(capsys)
