"""The command line: one-line errors, exit codes, masked passwords, `python -m job`."""

import subprocess
import sys

import pytest

from job.cli import _hide_password, main
from job.db.migrate import head_revision


def test_migrate_then_status_on_each_database(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--database-url", db_url]) == 0
    head = head_revision(db_url)
    assert f"upgraded empty -> {head}" in capsys.readouterr().out
    assert main(["migrate", "--database-url", db_url]) == 0
    assert f"already at revision {head}" in capsys.readouterr().out
    assert main(["status", "--database-url", db_url]) == 0
    out = capsys.readouterr().out
    assert f"revision {head}" in out
    assert "none stored yet" in out


def test_default_database_is_a_sqlite_file_in_the_working_directory(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"]) == 0
    assert (tmp_path / "nightcast.db").exists()


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        ({"NIGHTCAST_CALENDAR": "NOPE"}, ["status"], "NIGHTCAST_CALENDAR: unknown exchange"),
        ({}, ["status", "--database-url", "not a url"], "--database-url: not a database URL"),
        ({"NIGHTCAST_DATABASE_URL": "mysql://x/y"}, ["migrate"], "only sqlite and postgresql"),
        ({"NIGHTCAST_TICKERS": "TSLA,bad ticker"}, ["status"], "NIGHTCAST_TICKERS: invalid ticker"),
        ({}, ["run", "--tickers", ","], "--tickers: no ticker given"),
        ({}, ["run", "--tickers", "TSLA", "--as-of", "2020-13-01"], "--as-of: '2020-13-01' is not a date"),
        ({"NIGHTCAST_MODEL__WINDOW": "1"}, ["status"], "NIGHTCAST_MODEL__WINDOW"),
        ({"NIGHTCAST_SCHEDULE_CRON": "99 * * * *"}, ["status"], "NIGHTCAST_SCHEDULE_CRON"),
    ],
)
def test_bad_settings_give_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    args: list[str],
    expected: str,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert expected in err
    assert err.count("\n") == 1 and err.startswith("error: ")


def test_password_never_shown(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql+psycopg://postgres:s3cr3t@127.0.0.1:1/nowhere"
    assert main(["status", "--database-url", url]) == 1
    assert main(["migrate", "--database-url", url]) == 1
    captured = capsys.readouterr()
    assert "s3cr3t" not in captured.out + captured.err
    assert "error: database:" in captured.err


def test_a_password_echoed_in_an_error_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    message = "connection failed for postgres:s3cr3t@db"
    url = "postgresql+psycopg://postgres:s3cr3t@db/nightcast"
    assert _hide_password(message, ["status", "--database-url", url]) == (
        "connection failed for postgres:***@db"
    )
    assert _hide_password(message, ["status", f"--database-url={url}"]).count("s3cr3t") == 0
    monkeypatch.setenv("NIGHTCAST_DATABASE_URL", url)
    assert "s3cr3t" not in _hide_password(message, ["status"])


def test_status_masks_password_in_the_url(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = pg_url.replace("postgres@", "postgres:hunter2@")  # trust auth ignores it
    assert main(["status", "--database-url", url]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "postgres:***@" in out


def test_python_dash_m_job_is_the_same_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "job", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert "migrate" in done.stdout and "status" in done.stdout
