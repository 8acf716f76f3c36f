"""`nightcast ingest`: one line per ticker, exit 1 when any ticker failed, bad options named."""

from __future__ import annotations

from pathlib import Path

import pytest

from job.cli import main
from job.lock import cycle_lock

SAMPLE = Path(__file__).resolve().parents[1] / "job" / "data" / "TSLA.csv"


def test_sample_ingest_then_rerun(migrated_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["ingest", "--database-url", migrated_url, "--source", "sample", "--tickers", "tsla"]
    assert main(args) == 0
    assert capsys.readouterr().out == "TSLA: 2541 new rows, last session 2020-07-31\n"
    assert main(args) == 0
    assert capsys.readouterr().out == "TSLA: 0 new rows, last session 2020-07-31\n"


def test_a_failing_ticker_exits_1_while_the_others_are_stored(
    migrated_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "GOOD.csv").write_text(SAMPLE.read_text())
    (folder / "DUP.csv").write_text(SAMPLE.read_text() + SAMPLE.read_text().splitlines()[-1] + "\n")
    args = ["ingest", "--database-url", migrated_url, "--source", "csv", "--csv", str(folder)]
    assert main([*args, "--tickers", "GOOD,DUP"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "GOOD: 2541 new rows, last session 2020-07-31\n"
    assert captured.err == (
        f"failed: DUP: {folder / 'DUP.csv'}: rejected 2020-07-31: duplicate date (2 rows)\n"
    )
    assert main(["status", "--database-url", migrated_url]) == 0
    assert "GOOD" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--start", "2020-13-01"], "error: --start: '2020-13-01' is not a date (expected YYYY-MM-DD)\n"),
        (["--end", "yesterday"], "error: --end: 'yesterday' is not a date (expected YYYY-MM-DD)\n"),
        (["--start", "2020-07-31", "--end", "2020-07-01"], "error: --end 2020-07-01 is before --start"),
        (["--source", "ftp"], "error: setting --source: Input should be"),
        (["--source", "csv"], "error: source csv needs a path"),
        (["--tickers", "bad ticker"], "error: setting --tickers: invalid ticker 'bad ticker'"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(
    migrated_url: str, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    assert main(["ingest", "--database-url", migrated_url, "--source", "sample", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1


def test_an_unmigrated_database_is_refused(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ingest", "--database-url", db_url, "--source", "sample"]) == 1
    assert "run `nightcast migrate` first" in capsys.readouterr().err


def test_ingest_does_not_write_while_a_cycle_runs(
    migrated_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["ingest", "--database-url", migrated_url, "--source", "sample", "--tickers", "TSLA"]
    with cycle_lock(migrated_url, wait=False):
        assert main(args) == 1
    assert "another nightcast cycle is running" in capsys.readouterr().err
    assert main(["status", "--database-url", migrated_url]) == 0
    assert "TSLA" not in capsys.readouterr().out
