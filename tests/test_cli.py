"""The command line: one-line errors, exit codes, masked passwords, `python -m job`."""

import subprocess
import sys

import pytest

from job.cli import main
from job.db.migrate import head_revision
from job.errors import one_line
from job.support import redact


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
    assert main(args) == (2 if expected.startswith("--") else 1)  # an option's value: a usage error
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


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?password=S3cret",
        "postgresql+psycopg://postgres:S3cret@127.0.0.1:1/nowhere",
        "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?sslmode=disable&password=S3cret",
    ],
)
def test_a_password_anywhere_in_the_url_is_never_printed(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in ("migrate", "status", "run", "ingest"):
        assert main([command, "--database-url", url]) == 1
    captured = capsys.readouterr()
    assert "S3cret" not in captured.out + captured.err
    assert captured.err.count("\n") == 4 and captured.err.startswith("error: database: ")


def test_an_unencoded_at_in_the_password_is_named_without_quoting_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for url in (
        "postgresql+psycopg://postgres:p@ssW0rd@host/db",
        "postgresql+psycopg://u:p@ss:w/rd?#1@db:5432/x",
    ):
        assert main(["status", "--database-url", url]) == 2  # the option's value: a usage error
        err = capsys.readouterr().err
        assert "ssW0rd" not in err and "w/rd" not in err and err.count("\n") == 1
        assert "must be URL-encoded or set in NIGHTCAST_DATABASE_PASSWORD" in err


def test_redact_scrubs_remembered_passwords_as_written_and_encoded() -> None:
    redact.remember("p@ss:w/rd?#1")
    assert redact.redact("user p@ss:w/rd?#1 and u:p%40ss%3Aw%2Frd%3F%231@db") == "user *** and u:***@db"
    assert one_line(RuntimeError("boom: p@ss:w/rd?#1\n  [SQL: SELECT 1]")) == "RuntimeError: boom: ***"


def test_status_masks_password_in_the_url(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = pg_url.replace("postgres@", "postgres:hunter2@")  # trust auth ignores it
    assert main(["status", "--database-url", url]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "postgres:***@" in out


@pytest.mark.slow
def test_python_dash_m_job_is_the_same_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "job", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert "migrate" in done.stdout and "status" in done.stdout


PASSWORDS = ["p@ss:w/rd?#1", "a b%20c", "ünï'\"\\$x", "%", "x@y@z/#?&=+"]


@pytest.mark.parametrize("password", PASSWORDS)
def test_a_separate_password_reaches_the_driver_as_is(password: str, tmp_path, capsys) -> None:
    """NIGHTCAST_DATABASE_PASSWORD(_FILE): no URL-encoding needed, whatever the characters."""
    from job.config import load_settings
    from job.db import get_engine

    url = "postgresql+psycopg://nightcast@db:5432/nightcast"
    secret_file = tmp_path / "db_password"
    secret_file.write_text(password + "\n")  # as `echo pw > file` writes it
    for settings in (
        load_settings(database_url=url, database_password=password),
        load_settings(database_url=url, database_password_file=secret_file),
    ):
        engine = get_engine(settings.database_url)
        _, params = engine.dialect.create_connect_args(engine.url)
        assert params["password"] == password and params["host"] == "db" and params["dbname"] == "nightcast"
        assert settings.safe_database_url == "postgresql+psycopg://nightcast:***@db:5432/nightcast"
        assert password not in redact.redact(f"failed: {settings.database_url} / {password}")


def test_password_settings_problems_are_one_line(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("NIGHTCAST_DATABASE_URL", "postgresql+psycopg://nightcast@127.0.0.1:1/x")
    monkeypatch.setenv("NIGHTCAST_DATABASE_PASSWORD_FILE", str(tmp_path / "missing"))
    assert main(["status"]) == 1
    assert capsys.readouterr().err == (
        f"error: setting NIGHTCAST_DATABASE_PASSWORD_FILE: cannot read {tmp_path / 'missing'} "
        "(FileNotFoundError)\n"
    )
    monkeypatch.setenv("NIGHTCAST_DATABASE_PASSWORD", "x")
    assert main(["status"]) == 1
    assert "are both set: keep one" in capsys.readouterr().err


def _log_unexpected() -> None:
    import logging

    logging.getLogger("job.ingest.run").info("info from a job module")
    logging.getLogger("job.pipeline").debug("debug detail")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("job.pipeline").error("TSLA: RuntimeError: boom", exc_info=True)


@pytest.mark.parametrize(
    ("verbose", "tracebacks", "debug", "traceback"),
    [(False, False, False, False), (True, False, True, True), (False, True, False, True)],
)
def test_one_logger_tree_and_tracebacks_where_asked(
    capsys: pytest.CaptureFixture[str], verbose: bool, tracebacks: bool, debug: bool, traceback: bool
) -> None:
    """All of job.* shows INFO; tracebacks with --verbose, and always in the scheduler's log."""
    from job.support.logs import setup_logging

    setup_logging(verbose, tracebacks=tracebacks)
    _log_unexpected()
    err = capsys.readouterr().err
    assert "info from a job module" in err
    assert ("debug detail" in err) == debug
    assert ("Traceback (most recent call last)" in err) == traceback
    assert "TSLA: RuntimeError: boom" in err
