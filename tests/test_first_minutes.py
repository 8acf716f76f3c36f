"""What a new user runs into first: plausible mistakes refused before they store wrong data,
conventions of well-kept command lines, and runs recorded as what they were."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from job.cli import main
from job.config import load_settings
from job.console import SUMMARY_COLUMNS
from job.db import get_engine, job_runs, prices
from job.db.claims import Claims
from tests.commands import command_line

SAMPLE = Path(__file__).resolve().parents[1] / "job" / "data" / "TSLA.csv"


def stored_tickers(url: str) -> list[str]:
    with get_engine(url).connect() as conn:
        return list(conn.execute(sa.select(prices.c.ticker).distinct()).scalars())


def test_a_csv_file_named_for_another_ticker_is_refused_until_overridden(
    migrated_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    amd = tmp_path / "AMD.csv"
    shutil.copy(SAMPLE, amd)
    assert main(["ingest", "--database-url", migrated_url, "--csv", str(amd), "--tickers", "IBM"]) == 1
    err = capsys.readouterr().err
    assert "IBM: AMD.csv is named for AMD, not IBM: name the file IBM.csv" in err
    assert "NIGHTCAST_CSV_ANY_NAME" in err
    assert stored_tickers(migrated_url) == []
    monkeypatch.setenv("NIGHTCAST_CSV_ANY_NAME", "true")
    assert main(["ingest", "--database-url", migrated_url, "--csv", str(amd), "--tickers", "IBM"]) == 0
    assert stored_tickers(migrated_url) == ["IBM"]


def test_csv_implies_the_csv_source_and_another_source_with_it_is_refused(
    migrated_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", "--database-url", migrated_url, "--csv", str(SAMPLE), "--tickers", "TSLA"]) == 0
    assert stored_tickers(migrated_url) == ["TSLA"]
    capsys.readouterr()
    args = ["ingest", "--database-url", migrated_url, "--source", "yahoo", "--csv", str(SAMPLE)]
    assert main(args) == 2
    assert "--csv is read only by the csv source, not --source yahoo" in capsys.readouterr().err


def test_csv_on_the_command_line_wins_over_a_source_from_the_environment(
    migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NIGHTCAST_SOURCE", "yahoo")  # what compose and .env.example set
    prices = tmp_path / "prices.csv"  # a name that is no ticker symbol
    shutil.copy(SAMPLE, prices)
    assert main(["ingest", "--database-url", migrated_url, "--csv", str(prices), "--tickers", "TSLA"]) == 0
    assert stored_tickers(migrated_url) == ["TSLA"]


@pytest.mark.parametrize("command", ["status", "report", "export"])
def test_read_only_commands_never_create_a_database(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "nigthcast.db"
    extra = {"report": ["--out", str(tmp_path / "out")], "export": ["--ticker", "TSLA", "--out", "m.keras"]}
    assert main([command, "--database-url", f"sqlite:///{typo}", *extra.get(command, [])]) == 1
    assert f"database {typo} does not exist: run `nightcast migrate`" in capsys.readouterr().err
    assert not typo.exists()


def test_postgres_urls_without_the_driver_are_read_as_psycopg(pg_url: str) -> None:
    for scheme in ("postgres", "postgresql", "postgresql+psycopg2"):
        url = pg_url.replace("postgresql+psycopg", scheme, 1)
        settings = load_settings(database_url=url)
        assert settings.database_url == pg_url
        assert main(["status", "--database-url", url]) == 0


def test_an_unknown_nightcast_variable_is_named_with_the_closest_setting(
    migrated_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NIGHTCAST_TICKER", "IBM")
    monkeypatch.setenv("NIGHTCAST_MODEL__WINDOW", "20")  # a nested setting is known
    assert main(["status", "--database-url", migrated_url]) == 0
    err = capsys.readouterr().err
    assert "NIGHTCAST_TICKER is not a nightcast setting (did you mean NIGHTCAST_TICKERS?)" in err
    assert "NIGHTCAST_MODEL__WINDOW" not in err
    monkeypatch.setenv("NIGHTCAST_MODEL__WINDOWS", "20")  # a nested typo is named too
    assert main(["status", "--database-url", migrated_url]) == 0
    assert "NIGHTCAST_MODEL__WINDOWS is not a nightcast setting (did you mean NIGHTCAST_MODEL__WINDOW?)" in (
        capsys.readouterr().err
    )


def test_version_and_short_help(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"nightcast {version('nightcast')}"
    assert main(["-h"]) == 0
    assert "Usage: nightcast" in capsys.readouterr().out
    assert main(["backfill", "-h"]) == 0
    assert "--start" in capsys.readouterr().out


def test_a_run_that_finds_every_ticker_busy_is_recorded_as_busy(migrated_url: str) -> None:
    with Claims(migrated_url) as other:
        assert other.take(["TSLA"], wait=False) == ["TSLA"]
        assert (
            main(command_line("run", migrated_url, None, (), "--source", "sample", "--tickers", "TSLA")) == 1
        )
    with get_engine(migrated_url).connect() as conn:
        assert conn.execute(sa.select(job_runs.c.status)).scalars().all() == ["busy"]


def test_run_says_what_it_forecast_and_warns_past_the_stored_data_and_report_draws_the_stored_tickers(
    migrated_url: str, tmp_path: Path, tiny_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "prices"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / "AMD.csv")
    args = command_line("run", migrated_url, folder, ["AMD"], "--as-of", "2020-08-14")
    assert main(args) == 0
    said = capsys.readouterr()
    assert "AMD: the stored prices end 2020-07-31, before --as-of/--end 2020-08-14" in said.err
    forecast = next(line for line in said.out.splitlines() if "forecast for" in line)
    assert forecast.startswith("AMD: forecast for 2020-08-03: lstm ") and "naive " in forecast
    assert "next: `nightcast status`" in said.out
    assert main(["report", "--database-url", migrated_url, "--out", str(tmp_path / "report")]) == 0
    assert "report for AMD:" in capsys.readouterr().out  # not the configured default, TSLA


def test_json_output_of_run_backfill_and_status_parses_to_the_documented_shape(
    migrated_url: str, tiny_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    sample = ["--database-url", migrated_url, "--source", "sample", "--json"]
    assert main(["run", *sample, "--as-of", "2020-07-24"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["status"] == "succeeded" and run["summaries"] == {}
    [tsla] = run["tickers"]
    assert (tsla["ticker"], tsla["status"], tsla["target"]) == ("TSLA", "ok", "2020-07-27")
    assert tsla["lstm_close"] > 0 and tsla["naive_close"] > 0 and tsla["lower_95"] < tsla["upper_95"]
    assert main(["backfill", *sample, "--start", "2020-07-27"]) == 0
    backfill = json.loads(capsys.readouterr().out)
    summary = backfill["summaries"]["TSLA"]
    assert summary["sessions"] == 5 and summary["rmse_ratio"] > 0 and summary["calls"] <= 5
    assert {"rmse", "coverage_80", "winkler_95"} <= summary["lstm"].keys()
    assert main(["status", "--database-url", migrated_url, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["schema"]["revision"] == status["schema"]["head"]
    ticker = status["tickers"]["TSLA"]
    assert ticker["last_session"] == "2020-07-31" and ticker["flag"] is None
    assert ticker["forecasts"]["lstm"]["target_date"] == "2020-08-03"
    assert ticker["model"]["kind"] in ("retrain", "update") and ticker["skill"]
    assert status["last_run"]["kind"] == "backfill" and "details" not in status["last_run"]


def test_a_backfill_into_a_pipe_prints_tab_separated_lines_not_a_box_table(
    migrated_url: str, tiny_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["backfill", "--database-url", migrated_url, "--source", "sample", "--start", "2020-07-27"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines.index("\t".join(SUMMARY_COLUMNS))
    assert lines[header + 1].split("\t")[:2] == ["TSLA", "5"]
    assert not any("┃" in line or "│" in line for line in lines)


def test_config_shows_each_setting_where_it_came_from_with_passwords_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".env").write_text("NIGHTCAST_SOURCE=sample\n")
    monkeypatch.setenv("NIGHTCAST_TICKERS", "AAPL,MSFT")
    monkeypatch.setenv("NIGHTCAST_DATABASE_PASSWORD", "s3cret!")
    url = "postgresql://nightcast@db/nightcast"
    assert main(["config", "--database-url", url]) == 0
    out = capsys.readouterr().out
    shown = {line.split()[0]: line for line in out.splitlines()}
    assert shown["NIGHTCAST_TICKERS"].endswith("AAPL,MSFT  (environment)")
    assert shown["NIGHTCAST_SOURCE"].endswith("sample  (.env file)")
    assert shown["NIGHTCAST_CALENDAR"].endswith("XNYS  (default)")
    assert (
        "postgresql+psycopg://nightcast:***@db/nightcast  (command line)" in shown["NIGHTCAST_DATABASE_URL"]
    )
    assert "NIGHTCAST_MODEL__WINDOW" in shown and "s3cret" not in out


def test_shell_completion_is_offered(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--install-completion" in out and "--show-completion" in out
