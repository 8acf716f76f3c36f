"""Revisions: a history the source re-based is one exact map of every stored number, or refused.

A re-basing (a split, a change of units) divides or multiplies every stored price by one
factor: the tables must then hold what a clean load of the re-based history gives. Where
the changed sessions' ratios disagree (a correction, a partial fix, another ticker's
prices) nothing is touched until a correct download or an explicit `--accept`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from job.cli import main
from job.db import get_engine, model_versions, predictions, price_revisions
from tests.commands import command_line
from tests.conftest import SAMPLE_CSV
from tests.test_ingest import FrameSource, run, split_3_for_1, stored, tsla

PRICE_COLUMNS = ("Open", "High", "Low", "Close", "Adj Close")
PREDICTED = ("predicted_close", "lower_80", "upper_80", "lower_95", "upper_95", "network_close")
FIXTURES = Path(__file__).parent / "fixtures" / "clean"


def folder_with(path: Path, frame: pd.DataFrame, ticker: str = "TSLA") -> Path:
    path.mkdir(exist_ok=True)
    frame.to_csv(path / f"{ticker}.csv", index=False)
    return path


def cli(command: str, url: str, folder: Path, *extra: str) -> int:
    return main(command_line(command, url, folder, ["TSLA"], *extra))


def backfill(url: str, folder: Path, start: str, end: str) -> int:
    return cli("backfill", url, folder, "--start", start, "--end", end)


def table(url: str, sql: str) -> list[tuple]:
    with get_engine(url).connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(sql))]


def same_rows(left: list[tuple], right: list[tuple]) -> None:
    """Row for row equal: keys exactly, numbers to float noise (a re-based close times its
    factor is not always the same double as the re-based close)."""
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            if isinstance(x, float) and isinstance(y, float):
                assert x == pytest.approx(y, rel=1e-9), (a, b)
            else:
                assert x == y, (a, b)


def rebased(frame: pd.DataFrame, factor: float) -> pd.DataFrame:
    frame = frame.copy()
    frame[list(PRICE_COLUMNS)] = frame[list(PRICE_COLUMNS)] * factor
    frame["Volume"] = (frame["Volume"] / factor).round().astype("int64")
    return frame


PREDICTIONS = (
    f"SELECT ticker, target_date, model, as_of_date, {', '.join(PREDICTED)} FROM predictions ORDER BY 1, 2, 3"
)
METRICS = "SELECT * FROM rolling_metrics ORDER BY ticker, date, model, window_days"
VERSIONS = "SELECT kind, trained_from, trained_through, n_samples, epochs FROM model_versions ORDER BY id"


def test_a_3_for_1_rebase_mid_backfill_leaves_what_a_clean_load_of_the_rebased_history_gives(
    migrated_url: str, make_db, tmp_path: Path, tiny_env: dict[str, str]
) -> None:
    """Backfill in the old units to mid-May, then on: the source now serves the history /3.
    Every stored price-unit number (points, both intervals, the network's own forecasts,
    validation RMSEs), every metric and the intervals of the sessions after the revision
    equal a fresh database built from the re-based file."""
    original = pd.read_csv(SAMPLE_CSV)
    old, new = (
        folder_with(tmp_path / "old", original),
        folder_with(tmp_path / "new", rebased(original, 1 / 3)),
    )
    clean = make_db()
    assert backfill(migrated_url, old, "2020-05-01", "2020-05-15") == 0
    assert backfill(migrated_url, new, "2020-05-01", "2020-05-29") == 0
    assert backfill(clean, new, "2020-05-01", "2020-05-29") == 0

    [(kind, factor)] = table(migrated_url, "SELECT kind, factor FROM price_revisions")
    assert kind == "rebase" and factor == pytest.approx(1 / 3)
    assert len(table(migrated_url, PREDICTIONS)) == 2 * 21
    same_rows(table(migrated_url, PREDICTIONS), table(clean, PREDICTIONS))
    same_rows(table(migrated_url, METRICS), table(clean, METRICS))
    assert table(migrated_url, VERSIONS) == table(clean, VERSIONS), "no retrain: the returns are unchanged"

    def validation(url: str) -> list[tuple]:
        with get_engine(url).connect() as conn:
            params = conn.execute(sa.select(model_versions.c.params).order_by(model_versions.c.id)).scalars()
            return [(p["forecaster"]["val_rmse"], p["forecaster"]["val_naive_rmse"]) for p in params]

    same_rows(validation(migrated_url), validation(clean))


def test_a_rebase_rescales_every_price_unit_column_of_every_forecast(migrated_url: str) -> None:
    run(migrated_url, FrameSource({"TSLA": tsla()}), ["TSLA"], end=dt.date(2020, 7, 24))
    made = dt.datetime(2020, 7, 24, 23, tzinfo=dt.UTC)
    values = dict(zip(PREDICTED, (300.0, 290.0, 310.0, 280.0, 320.0, 305.0), strict=True))
    with get_engine(migrated_url).begin() as conn:
        conn.execute(
            sa.insert(predictions),
            [{"ticker": "TSLA", "target_date": dt.date(2020, 7, 27), "model": model,
              "as_of_date": dt.date(2020, 7, 24), "created_at": made} | values
             for model in ("lstm", "naive")],
        )  # fmt: skip
    result = run(migrated_url, FrameSource({"TSLA": split_3_for_1(tsla())}), ["TSLA"])["TSLA"]
    assert result.revised is not None and result.revised.predictions_rescaled == 2
    with get_engine(migrated_url).connect() as conn:
        for row in conn.execute(sa.select(*(predictions.c[c] for c in PREDICTED))):
            assert tuple(row) == pytest.approx(tuple(v / 3 for v in values.values()))


def test_a_correction_of_some_sessions_is_flagged_and_only_an_accept_stores_it(
    migrated_url: str, tmp_path: Path, tiny_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Stored with a /100 step on 2020-07-27 that someone accepted; then the file is fixed.
    The changed sessions disagree with the unchanged ones (x100 against x1): no factor maps
    the old history onto the new, so nothing is touched and the dates are named. Accepted,
    each corrected session's forecasts follow its own close (naive is the last close)."""
    good = pd.read_csv(SAMPLE_CSV)
    bad = good.copy()
    late = pd.to_datetime(bad["Date"]) >= "2020-07-27"
    bad.loc[late, list(PRICE_COLUMNS)] /= 100
    broken, fixed = folder_with(tmp_path / "broken", bad), folder_with(tmp_path / "fixed", good)
    assert cli("ingest", migrated_url, broken, "--end", "2020-07-30", "--accept", "2020-07-27") == 0
    assert backfill(migrated_url, broken, "2020-07-20", "2020-07-30") == 0
    before = stored(migrated_url), table(migrated_url, PREDICTIONS), table(migrated_url, METRICS)
    capsys.readouterr()

    assert cli("ingest", migrated_url, fixed, "--end", "2020-07-30") == 1
    error = capsys.readouterr().err
    assert "flagged 2020-07-27 close x100; 2020-07-28 close x100; 2020-07-29 close x100; and 1 more" in error
    assert "--accept" in error and "\n" not in error.strip()
    assert stored(migrated_url).equals(before[0])
    assert (table(migrated_url, PREDICTIONS), table(migrated_url, METRICS)) == before[1:]
    assert table(migrated_url, "SELECT count(*) FROM price_revisions") == [(0,)]
    assert table(migrated_url, "SELECT first_date, last_date FROM price_flags") != []

    accept = [arg for day in ("2020-07-27", "2020-07-28", "2020-07-29") for arg in ("--accept", day)]
    assert cli("ingest", migrated_url, fixed, "--end", "2020-07-30", *accept) == 1, "one date left out"
    assert cli("ingest", migrated_url, fixed, "--end", "2020-07-30", *accept, "--accept", "2020-07-30") == 0
    assert table(migrated_url, "SELECT count(*) FROM price_flags") == [(0,)]
    [(kind, factor, first, last, changed)] = table(
        migrated_url, "SELECT kind, factor, first_revised_date, last_revised_date, sessions_changed "
        "FROM price_revisions"
    )  # fmt: skip
    assert (kind, factor, str(first), str(last), changed) == (
        "correction",
        1.0,
        "2020-07-27",
        "2020-07-30",
        4,
    )
    naive = table(
        migrated_url,
        "SELECT p.predicted_close, c.close FROM predictions p JOIN prices c ON c.ticker = p.ticker "
        "AND c.date = p.as_of_date WHERE p.model = 'naive'",
    )
    assert len(naive) == 10 and all(point == pytest.approx(close, rel=1e-12) for point, close in naive)

    assert cli("run", migrated_url, fixed, "--as-of", "2020-07-31") == 0
    assert table(migrated_url, "SELECT kind FROM model_versions ORDER BY id DESC LIMIT 1") == [("retrain",)]


def test_another_tickers_file_is_flagged_not_taken_for_a_revision(
    migrated_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("ingest", migrated_url, folder_with(tmp_path / "tsla", pd.read_csv(SAMPLE_CSV))) == 0
    before = stored(migrated_url)
    amd = pd.read_csv(FIXTURES / "AMD.csv.gz")
    amd = amd[amd["Date"] <= "2020-07-31"]
    capsys.readouterr()
    assert cli("ingest", migrated_url, folder_with(tmp_path / "amd", amd)) == 1
    error = capsys.readouterr().err
    assert "TSLA: " in error and "flagged" in error and "another ticker" in error
    assert stored(migrated_url).equals(before)
    assert table(migrated_url, "SELECT count(*) FROM price_revisions") == [(0,)]


def test_a_download_that_drops_a_session_and_corrects_another_touches_nothing(migrated_url: str) -> None:
    start = dt.date(2019, 7, 31)
    run(migrated_url, FrameSource({"TSLA": tsla()}), ["TSLA"], history_start=start)
    before = stored(migrated_url)
    assert len(before) > 250
    served = tsla()
    served = served[served["date"] != dt.date(2020, 7, 15)].copy()
    served.loc[served["date"] == dt.date(2020, 7, 28), "close"] *= 1.001
    [outcome] = ingest_outcomes(migrated_url, served, start)
    assert outcome.flagged and "2020-07-28 close x1.001" in outcome.error
    assert stored(migrated_url).equals(before)


def test_a_rebase_keeps_the_sessions_the_source_stopped_serving_in_the_new_units(migrated_url: str) -> None:
    start = dt.date(2019, 7, 31)
    run(migrated_url, FrameSource({"TSLA": tsla()}), ["TSLA"], history_start=start)
    before = stored(migrated_url).set_index("date")
    served = split_3_for_1(tsla())
    served = served[served["date"] != dt.date(2020, 7, 15)]
    [outcome] = ingest_outcomes(migrated_url, served, start)
    assert outcome.ok and outcome.result.revised is not None
    assert any("2020-07-15" in w and "no longer serves" in w for w in outcome.result.warnings)
    after = stored(migrated_url).set_index("date")
    assert len(after) == len(before)
    kept = after.loc[dt.date(2020, 7, 15)]
    for column in ("open", "high", "low", "close", "adj_close"):
        assert kept[column] == pytest.approx(before.loc[dt.date(2020, 7, 15), column] / 3)


def ingest_outcomes(url: str, frame: pd.DataFrame, start: dt.date) -> list:
    from tests.test_ingest import ingest

    return ingest(url, ["TSLA"], FrameSource({"TSLA": frame}), history_start=start)


def test_the_revision_kind_is_part_of_the_contract(migrated_url: str) -> None:
    with get_engine(migrated_url).connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("price_revisions")}
    assert "kind" in columns and {c.name for c in price_revisions.columns} == columns
