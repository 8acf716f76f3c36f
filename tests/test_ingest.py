"""Ingest on SQLite and PostgreSQL: idempotent appends, rejected batches, re-based history."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from job.db import get_engine, model_versions, predictions, price_revisions, prices
from job.db.bars import BULK_THRESHOLD, write_bars
from job.errors import TickerError
from job.ingest.compare import OVERLAP_SESSIONS
from job.ingest.run import ingest_many
from job.ingest.sources import CsvSource, SampleSource
from job.ingest.sources.base import Bars, finish
from job.ingest.validate import validate
from job.persist.steps import revision_follower
from job.support.calendar import Calendars, get_sessions

XNYS = get_sessions("XNYS")
UTC = dt.UTC
NIGHT = dt.datetime(2020, 7, 31, 22, 30, tzinfo=UTC)
START = dt.date(2000, 1, 1)
SAMPLE = Path(__file__).resolve().parents[1] / "job" / "data" / "TSLA.csv"


class FrameSource:
    """A source serving fixed frames (what Yahoo would answer at that moment)."""

    def __init__(self, frames: dict[str, pd.DataFrame], name: str = "yahoo") -> None:
        self.frames = frames
        self.name = name
        self.calls: list[tuple[str, dt.date, dt.date]] = []

    def fetch(self, ticker: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        self.calls.append((ticker, start, end))
        if ticker not in self.frames:
            raise TickerError(ticker, "unknown or delisted ticker")
        return finish(self.frames[ticker], start, end)


def tsla() -> pd.DataFrame:
    return SampleSource().fetch("TSLA", START, dt.date(2020, 7, 31))


def split_3_for_1(frame: pd.DataFrame) -> pd.DataFrame:
    """What Yahoo shows after a 3:1 split: the shares trade at a third (and three times as
    many change hands), and every earlier bar is re-based to match, so no step appears."""
    frame = frame.copy()
    for column in ("open", "high", "low", "close", "adj_close"):
        frame[column] = frame[column] / 3
    frame["volume"] = frame["volume"] * 3
    return frame


def stored(url: str, ticker: str = "TSLA") -> pd.DataFrame:
    with get_engine(url).connect() as conn:
        rows = conn.execute(sa.select(prices).where(prices.c.ticker == ticker).order_by(prices.c.date)).all()
    return pd.DataFrame(rows, columns=[c.name for c in prices.columns])


def ingest(url: str, tickers: list[str], source: object, **kw: object) -> list:
    """`ingest_many` on a connection of its own, with the defaults of these tests."""
    kw = {"history_start": START, "now": NIGHT, "follow": revision_follower([5, 20, 60]), **kw}
    with get_engine(url).connect() as conn:
        return ingest_many(conn, tickers, source, Calendars(), **kw)  # type: ignore[arg-type]


def run(url: str, source: object, tickers: list[str], **kw: object) -> dict[str, object]:
    return {o.ticker: (o.result if o.ok else o.error) for o in ingest(url, tickers, source, **kw)}


def test_sample_loads_once_and_a_rerun_changes_nothing(migrated_url: str) -> None:
    first = run(migrated_url, SampleSource(), ["tsla"])["TSLA"]
    assert first.new_rows == 2541 and first.revised is None and first.last_session == dt.date(2020, 7, 31)
    before = stored(migrated_url)
    assert len(before) == 2541 and set(before["source"]) == {"sample"}
    later = NIGHT + dt.timedelta(days=3)
    again = run(migrated_url, SampleSource(), ["TSLA"], now=later)["TSLA"]
    assert (again.new_rows, again.updated_rows, again.revised) == (0, 0, None)
    after = stored(migrated_url)
    pd.testing.assert_frame_equal(before, after)  # not even ingested_at moved


def test_a_stored_ticker_refetches_only_the_overlap_and_appends(migrated_url: str) -> None:
    source = FrameSource({"TSLA": tsla()})
    run(migrated_url, source, ["TSLA"], end=dt.date(2020, 7, 24))
    assert source.calls[-1] == ("TSLA", START, dt.date(2020, 7, 24))
    result = run(migrated_url, source, ["TSLA"])["TSLA"]
    overlap_start = XNYS.sessions_in_range(dt.date(2020, 7, 1), dt.date(2020, 7, 24))[-OVERLAP_SESSIONS]
    assert source.calls[-1] == ("TSLA", overlap_start, dt.date(2020, 7, 31))
    assert result.new_rows == 5 and result.updated_rows == 0
    assert len(stored(migrated_url)) == 2541


def test_a_ticker_left_alone_for_months_still_refetches_from_its_own_overlap(migrated_url: str) -> None:
    source = FrameSource({"TSLA": tsla()})
    run(migrated_url, source, ["TSLA"], end=dt.date(2020, 4, 30))  # older than RECENT_SPAN by NIGHT
    result = run(migrated_url, source, ["TSLA"])["TSLA"]
    overlap_start = XNYS.sessions_in_range(dt.date(2020, 4, 1), dt.date(2020, 4, 30))[-OVERLAP_SESSIONS]
    assert source.calls[-1] == ("TSLA", overlap_start, dt.date(2020, 7, 31))
    assert (result.new_rows, result.updated_rows) == (
        len(XNYS.sessions_in_range(dt.date(2020, 5, 1), NIGHT.date())),
        0,
    )
    assert len(stored(migrated_url)) == 2541


def test_only_closed_sessions_are_stored(migrated_url: str) -> None:
    during = dt.datetime(2020, 7, 31, 17, 0, tzinfo=UTC)  # the source still serves Friday's live bar
    result = run(migrated_url, FrameSource({"TSLA": tsla()}), ["TSLA"], now=during)["TSLA"]
    assert result.last_session == dt.date(2020, 7, 30)
    assert stored(migrated_url)["date"].max() == dt.date(2020, 7, 30)


def test_a_corrected_volume_updates_that_row_without_a_revision(migrated_url: str) -> None:
    frame = tsla()
    run(migrated_url, FrameSource({"TSLA": frame}), ["TSLA"])
    fixed = frame.copy()
    fixed.loc[fixed.index[-1], "volume"] += 1000
    result = run(migrated_url, FrameSource({"TSLA": fixed}), ["TSLA"])["TSLA"]
    assert (result.new_rows, result.updated_rows, result.revised) == (0, 1, None)
    assert stored(migrated_url)["volume"].iat[-1] == 61042000


def test_bulk_writes_store_exactly_what_the_row_upsert_stores(migrated_url: str) -> None:
    """COPY (PostgreSQL) and executemany (SQLite) skip SQLAlchemy's type handling, so they
    must agree with it to the bit: dates, doubles, integer volumes, timestamps."""
    bars = validate(tsla(), "TSLA", XNYS).bars
    assert len(bars) >= BULK_THRESHOLD
    stamp = dt.datetime(2020, 7, 31, 22, 30, 15, 123456, tzinfo=UTC)

    def write_prices(conn: sa.Connection, ticker: str, bars: Bars, source: str, now: dt.datetime) -> None:
        write_bars(conn, ticker, bars.dates, bars.columns(), source, now, fresh=ticker == "FRESH")

    with get_engine(migrated_url).begin() as conn:
        write_prices(conn, "FRESH", bars, "csv", stamp)
        write_prices(conn, "MERGED", bars.take(slice(0, 10)), "csv", stamp)
        write_prices(conn, "MERGED", bars, "csv", stamp)  # conflicts on the first 10
        for start in range(0, len(bars), BULK_THRESHOLD - 1):
            write_prices(conn, "ROWS", bars.take(slice(start, start + BULK_THRESHOLD - 1)), "csv", stamp)
    reference = stored(migrated_url, "ROWS").drop(columns="ticker")
    assert (
        len(reference) == len(bars) and reference["ingested_at"].map(lambda t: t.microsecond).eq(123456).all()
    )
    for ticker in ("FRESH", "MERGED"):
        pd.testing.assert_frame_equal(stored(migrated_url, ticker).drop(columns="ticker"), reference)


def bad_csv_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "csv"
    folder.mkdir()
    lines = SAMPLE.read_text().splitlines()
    header, body = lines[0], lines[1:]
    (folder / "GOOD.csv").write_text("\n".join(lines) + "\n")
    (folder / "DUP.csv").write_text("\n".join([header, *body, body[-1]]) + "\n")
    negative = body[-1].split(",")
    negative[4] = "-286.152008"
    (folder / "NEG.csv").write_text("\n".join([header, *body[:-1], ",".join(negative)]) + "\n")
    (folder / "BADDATE.csv").write_text("\n".join([header, *body, "2020-08-3x,1,2,0.5,1.5,1.5,10"]) + "\n")
    return folder


def test_bad_files_fail_their_ticker_and_lose_nothing(migrated_url: str, tmp_path: Path) -> None:
    folder = bad_csv_dir(tmp_path)
    # NEG and DUP were stored fine yesterday (through 2020-07-30).
    yesterday = FrameSource({"NEG": tsla().iloc[:-1], "DUP": tsla().iloc[:-1]})
    run(migrated_url, yesterday, ["NEG", "DUP"], end=dt.date(2020, 7, 30))
    kept = {t: stored(migrated_url, t) for t in ("NEG", "DUP")}

    got = run(migrated_url, CsvSource(folder), ["GOOD", "DUP", "NEG", "BADDATE", "bad ticker"])
    assert got["GOOD"].new_rows == 2541
    assert got["DUP"] == f"DUP: {folder / 'DUP.csv'}: rejected 2020-07-31: duplicate date (2 rows)"
    assert got["NEG"] == (
        f"NEG: {folder / 'NEG.csv'}: rejected 2020-07-31: non-positive price (close=-286.152)"
    )
    assert got["BADDATE"] == (
        f"BADDATE: {folder / 'BADDATE.csv'}: rejected line 2543: unparseable date ('2020-08-3x')"
    )
    assert got["bad ticker"].startswith("invalid ticker 'bad ticker'")
    for ticker, frame in kept.items():
        pd.testing.assert_frame_equal(stored(migrated_url, ticker), frame)
    assert stored(migrated_url, "BADDATE").empty
    assert len(stored(migrated_url, "GOOD")) == 2541


def test_a_night_lands_every_ticker_and_reports_them_in_the_order_asked(migrated_url: str) -> None:
    frame = tsla()
    run(migrated_url, FrameSource({"A": frame.iloc[:-1], "B": frame.iloc[:-1]}), ["A", "B"])
    tonight = FrameSource({"A": frame, "B": frame, "NEW": frame})
    got = run(migrated_url, tonight, ["B", "no way", "NEW", "GONE", "A"])
    assert list(got) == ["B", "no way", "NEW", "GONE", "A"]
    assert (got["A"].new_rows, got["B"].new_rows, got["NEW"].new_rows) == (1, 1, 2541)
    assert got["GONE"] == "GONE: unknown or delisted ticker"
    for ticker in ("A", "B", "NEW"):
        assert stored(migrated_url, ticker)["date"].tolist() == frame["date"].tolist()
    again = run(migrated_url, tonight, ["A", "B", "NEW"])
    assert [(r.new_rows, r.updated_rows) for r in again.values()] == [(0, 0)] * 3


def test_a_ticker_named_twice_is_ingested_once(migrated_url: str) -> None:
    frame = tsla()
    run(migrated_url, FrameSource({"A": frame.iloc[:-1]}), ["A"])
    outcomes = ingest(migrated_url, ["a", "A"], FrameSource({"A": frame}))
    assert [(o.ticker, o.result.new_rows if o.result else o.error) for o in outcomes] == [("A", 1)]
    assert len(stored(migrated_url, "A")) == len(frame)


def test_a_3_for_1_split_reloads_history_and_rescales_predictions(migrated_url: str) -> None:
    engine = get_engine(migrated_url)
    original = tsla()
    run(migrated_url, FrameSource({"TSLA": original}), ["TSLA"], end=dt.date(2020, 7, 24))
    model_time = dt.datetime(2020, 7, 24, 23, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(model_versions).values(
                id=1, ticker="TSLA", kind="retrain", trained_from=dt.date(2015, 1, 2),
                trained_through=dt.date(2020, 7, 24), n_samples=100, epochs=3, params={},
                artifact_sha256="0" * 64, created_at=model_time,
            )
        )  # fmt: skip
        conn.execute(
            sa.insert(predictions),
            [
                {"ticker": "TSLA", "target_date": target, "model": "lstm", "as_of_date": as_of,
                 "predicted_close": value, "model_version_id": 1, "created_at": model_time}
                for as_of, target, value in [
                    (dt.date(2020, 7, 23), dt.date(2020, 7, 24), 300.0),
                    (dt.date(2020, 7, 24), dt.date(2020, 7, 27), 291.0),  # made from pre-split closes
                ]
            ],
        )  # fmt: skip

    after_split = split_3_for_1(original)
    source = FrameSource({"TSLA": after_split})
    result = run(migrated_url, source, ["TSLA"])["TSLA"]

    revision = result.revised
    assert revision is not None, "the overlap's closes changed 3x: a revision"
    assert revision.factor == pytest.approx(1 / 3)
    assert (revision.first_revised_date, revision.last_revised_date) == (
        dt.date(2010, 6, 29),
        dt.date(2020, 7, 24),
    )
    assert revision.sessions_changed == 2536 and revision.predictions_rescaled == 2
    assert result.new_rows == 5
    assert source.calls[-1] == ("TSLA", START, dt.date(2020, 7, 31)), "whole history reloaded"

    now_stored = stored(migrated_url)
    assert len(now_stored) == 2541
    assert now_stored["close"].iat[0] == pytest.approx(4.778 / 3)
    assert now_stored["volume"].iat[0] == 93831500 * 3
    assert now_stored["close"].iat[-1] == pytest.approx(286.152008 / 3)

    with engine.connect() as conn:
        recorded = conn.execute(sa.select(price_revisions)).one()
        rescaled = dict(
            conn.execute(sa.select(predictions.c.as_of_date, predictions.c.predicted_close)).all()
        )
        # The pipeline's rule: a revision newer than the latest model version means "retrain".
        retrain = conn.scalar(
            sa.select(sa.func.count())
            .select_from(price_revisions)
            .where(
                price_revisions.c.ticker == "TSLA",
                price_revisions.c.detected_at
                > sa.select(sa.func.max(model_versions.c.created_at))
                .where(model_versions.c.ticker == "TSLA")
                .scalar_subquery(),
            )
        )
    assert recorded.factor == pytest.approx(1 / 3) and recorded.sessions_changed == 2536
    assert recorded.source == "yahoo" and recorded.first_revised_date == dt.date(2010, 6, 29)
    assert rescaled[dt.date(2020, 7, 23)] == pytest.approx(100.0)
    assert rescaled[dt.date(2020, 7, 24)] == pytest.approx(97.0)
    assert retrain == 1

    again = run(migrated_url, source, ["TSLA"], now=NIGHT + dt.timedelta(days=1))["TSLA"]
    assert (again.new_rows, again.revised) == (0, None), "the reload is stable"
