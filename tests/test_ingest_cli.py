"""`nightcast ingest`: one line per ticker, exit 1 when any ticker failed, bad options named."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from job.cli import main
from job.db.claims import Claims

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
        (["--tickers", ".."], "error: setting --tickers: invalid ticker '..'"),
        (["--tickers", "TSLA,^-="], "error: setting --tickers: invalid ticker '^-='"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(
    migrated_url: str, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    code = 1 if "source csv needs a path" in expected else 2  # an option's value: a usage error
    assert main(["ingest", "--database-url", migrated_url, "--source", "sample", *args]) == code
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1


def test_an_unmigrated_database_is_refused(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ingest", "--database-url", db_url, "--source", "sample"]) == 1
    assert "run `nightcast migrate` first" in capsys.readouterr().err


def test_ingest_does_not_write_while_a_cycle_runs(
    migrated_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["ingest", "--database-url", migrated_url, "--source", "sample", "--tickers", "TSLA"]
    with Claims(migrated_url) as claims:
        assert claims.take(["TSLA"], wait=False) == ["TSLA"]
        assert main(args) == 1
    assert "TSLA: another nightcast cycle on" in capsys.readouterr().err
    assert main(["status", "--database-url", migrated_url]) == 0
    assert "TSLA" not in capsys.readouterr().out


def _stored_prices(url: str) -> list[tuple]:
    from job.db import get_engine

    with get_engine(url).connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT * FROM prices ORDER BY date"))]


def _with_cell(lines: list[str], day: str, column: str, value: str) -> str:
    """The CSV text with one cell of one session replaced (by its raw text)."""
    header = lines[0].split(",")
    out = []
    for line in lines:
        cells = line.split(",")
        if cells[0] == day:
            cells[header.index(column)] = value
        out.append(",".join(cells))
    return "\n".join(out) + "\n"


BAD_CELLS = [
    ("Volume", "1e30", "volume out of range (volume=1e+30, above 1e+15)"),
    ("Volume", "99999999999999999999", "volume out of range (volume=1e+20, above 1e+15)"),
    ("Volume", "9223372036854775808", "volume out of range (volume=9.22337e+18, above 1e+15)"),
    ("Volume", "inf", "not a finite number (volume=inf)"),
    ("Close", "inf", "not a finite number (close=inf)"),
    ("Close", "1e308", "price out of range (close=1e+308, above 1e+09)"),
]


@pytest.mark.parametrize(("column", "value", "rule"), BAD_CELLS)
@pytest.mark.parametrize("path", ["append", "bulk"])
def test_out_of_range_values_are_refused_and_nothing_stored_changes(
    migrated_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    column: str,
    value: str,
    rule: str,
    path: str,
) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "TSLA.csv").write_text(SAMPLE.read_text())
    args = [
        "ingest",
        "--database-url",
        migrated_url,
        "--source",
        "csv",
        "--csv",
        str(folder),
        "--tickers",
        "TSLA",
    ]
    assert main(args) == 0
    before = _stored_prices(migrated_url)
    (folder / "TSLA.csv").write_text(_with_cell(SAMPLE.read_text().splitlines(), "2020-07-31", column, value))
    capsys.readouterr()
    # "append" re-fetches the last sessions (an upsert); "bulk" re-reads a year (COPY / executemany)
    assert main([*args, *(["--start", "2019-07-01"] if path == "bulk" else [])]) == 1
    err = capsys.readouterr().err
    assert err == f"failed: TSLA: {folder / 'TSLA.csv'}: rejected 2020-07-31: {rule}\n"
    assert _stored_prices(migrated_url) == before


def test_a_bad_first_load_stores_nothing(migrated_url: str, tmp_path: Path) -> None:
    path = tmp_path / "TSLA.csv"
    path.write_text(_with_cell(SAMPLE.read_text().splitlines(), "2015-01-02", "Volume", "1e30"))
    args = [
        "ingest",
        "--database-url",
        migrated_url,
        "--source",
        "csv",
        "--csv",
        str(path),
        "--tickers",
        "TSLA",
    ]
    assert main(args) == 1
    assert _stored_prices(migrated_url) == []


def test_a_good_download_repairs_a_broken_stored_row(
    migrated_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows stored before validation refused them (inf, 1e308) are replaced by the next good download."""
    from job.db import get_engine

    args = ["ingest", "--database-url", migrated_url, "--source", "sample", "--tickers", "TSLA"]
    assert main(args) == 0
    good = _stored_prices(migrated_url)
    with get_engine(migrated_url).begin() as conn:
        conn.execute(
            sa.text("UPDATE prices SET close = :inf, volume = :big WHERE date = :day"),
            {"inf": float("inf"), "big": -(2**63), "day": dt.date(2020, 7, 30)},
        )
        conn.execute(sa.text("UPDATE prices SET adj_close = 1e308 WHERE date = '2020-07-29'"))
    assert main(args) == 0
    repaired = _stored_prices(migrated_url)
    assert [r[:8] for r in repaired] == [r[:8] for r in good]


def test_one_file_is_one_tickers(migrated_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["ingest", "--database-url", migrated_url, "--source", "csv", "--csv", str(SAMPLE)]
    assert main([*args, "--tickers", "TSLA,MSFT"]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"error: --csv {SAMPLE} is one file, which holds one ticker's prices, but 2 tickers were "
        "given (TSLA,MSFT): pass a folder of TICKER.csv files\n"
    )
    assert _stored_prices(migrated_url) == []
    assert main([*args, "--tickers", "TSLA"]) == 0


def test_history_before_the_calendar_starts_at_its_first_session_with_a_warning(
    migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    lines += [
        f"{day},1,2,0.5,1.5,1.5,100" for day in ("1989-12-28", "1989-12-29", "1990-01-02", "1990-01-03")
    ]
    path = tmp_path / "OLD.csv"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("NIGHTCAST_HISTORY_START", "1950-01-01")
    args = [
        "ingest",
        "--database-url",
        migrated_url,
        "--source",
        "csv",
        "--csv",
        str(path),
        "--tickers",
        "OLD",
    ]
    assert main(args) == 0
    assert capsys.readouterr().out == (
        "OLD: 2 new rows, 1 warnings (first: OLD 1950-01-01: history before 1990-01-02 is not fetched "
        "(the XNYS calendar starts there)), last session 1990-01-03\n"
    )
    assert [str(r[1]) for r in _stored_prices(migrated_url)] == ["1990-01-02", "1990-01-03"]
