"""Per-ticker exchange calendars: a London, a Tokyo and a New York ticker in one job.

Around early June 2022 the three disagree: 2022-05-30 was Memorial Day in New York but a
session in London; 2022-06-02 and 06-03 were the Jubilee holidays in London but sessions in
New York and Tokyo. Each ticker's series below trades on its own exchange's sessions only,
so one shared calendar would refuse two of the three files as "not an exchange session".
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from job.config import Settings
from job.db import get_engine, job_runs
from job.errors import NightcastError
from job.ingest.sources import source_for
from job.pipeline import Cycle
from job.scheduler import NightlyService
from job.support.calendar import SUFFIX_CALENDARS, Calendars, get_sessions
from tests.conftest import tiny_settings

UTC = dt.UTC
EXCHANGES = {"AET.L": "XLON", "4063.T": "XTKS", "TSLA": "XNYS"}
FIRST, LAST = dt.date(2021, 6, 1), dt.date(2022, 6, 10)
FRIDAY_NIGHT = dt.datetime(2022, 6, 3, 23, 0, tzinfo=UTC)  # after all three closes of 06-03


def test_a_ticker_follows_its_configured_exchange_then_its_suffix_then_the_default() -> None:
    calendars = Settings(calendar="XNYS", calendars="BP=XLON").exchanges
    assert [calendars.name(t) for t in ("BP", "AET.L", "4063.T", "SHOP.TO", "TSLA", "BRK.B")] == [
        "XLON", "XLON", "XTKS", "XTSE", "XNYS", "XNYS"
    ]  # fmt: skip
    assert Calendars("XTKS").name("TSLA") == "XTKS"


@pytest.mark.slow  # builds every exchange calendar
@pytest.mark.parametrize("name", sorted(set(SUFFIX_CALENDARS.values())))
def test_every_suffix_default_is_a_calendar(name: str) -> None:
    assert get_sessions(name).name == name


@pytest.mark.parametrize(
    ("value", "error"),
    [("AET.L=XXXX", "unknown exchange calendar 'XXXX'"), ("AET.L:XLON", "TICKER=CALENDAR pairs")],
)
def test_bad_calendar_settings_say_what_is_wrong(value: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Settings(calendars=value)


def write_series(folder: Path) -> Path:
    """A random walk per ticker on its own exchange's sessions, as Yahoo-format CSV files."""
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(7)
    for ticker, exchange in EXCHANGES.items():
        days = get_sessions(exchange).sessions_in_range(FIRST, LAST)
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.015, len(days))))
        frame = pd.DataFrame(
            {"Date": days, "Open": close, "High": close * 1.01, "Low": close * 0.99, "Close": close,
             "Adj Close": close, "Volume": 1_000_000}
        )  # fmt: skip
        frame.to_csv(folder / f"{ticker}.csv", index=False)
    return folder


def forecasts(url: str, ticker: str) -> list[tuple[dt.date, dt.date]]:
    """(as_of_date, target_date) of the ticker's naive forecasts, oldest first."""
    with get_engine(url).connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT as_of_date, target_date FROM predictions WHERE ticker = :t AND model = 'naive' "
                "ORDER BY as_of_date"
            ),
            {"t": ticker},
        ).all()
    return [(dt.date.fromisoformat(str(a)), dt.date.fromisoformat(str(t))) for a, t in rows]


def test_a_mixed_universe_runs_a_night_and_a_backfill_each_on_its_own_sessions(
    migrated_url: str, tmp_path: Path
) -> None:
    settings = tiny_settings(
        migrated_url, source="csv", csv_path=write_series(tmp_path / "prices"), tickers=list(EXCHANGES),
        history_start=FIRST.isoformat(),
    )  # fmt: skip
    cycle = Cycle(settings, source_for(settings), now=lambda: FRIDAY_NIGHT)

    night = cycle.nightly(list(EXCHANGES))
    assert night.status == "succeeded", [t.error for t in night.tickers]
    # London's last session by Friday night was Wednesday (Jubilee Thursday and Friday)
    assert forecasts(migrated_url, "AET.L") == [(dt.date(2022, 6, 1), dt.date(2022, 6, 6))]
    assert forecasts(migrated_url, "TSLA") == [(dt.date(2022, 6, 3), dt.date(2022, 6, 6))]
    assert forecasts(migrated_url, "4063.T") == [(dt.date(2022, 6, 3), dt.date(2022, 6, 6))]

    start = dt.date(2022, 5, 26)
    backfill = cycle.backfill(list(EXCHANGES), start=start)
    assert backfill.status == "succeeded", [t.error for t in backfill.tickers]
    for ticker, exchange in EXCHANGES.items():
        sessions = get_sessions(exchange)
        before = sessions.sessions_in_range(start - dt.timedelta(days=10), start - dt.timedelta(days=1))[-1]
        as_of = [before, *sessions.sessions_in_range(start, FRIDAY_NIGHT.date())]
        assert forecasts(migrated_url, ticker) == [(day, sessions.next_session(day)) for day in as_of], ticker
    london = [a for a, _ in forecasts(migrated_url, "AET.L")]
    new_york = [a for a, _ in forecasts(migrated_url, "TSLA")]
    assert dt.date(2022, 5, 30) in london and dt.date(2022, 5, 30) not in new_york
    assert dt.date(2022, 6, 2) in new_york and dt.date(2022, 6, 2) not in london


def test_the_schedule_runs_when_any_tickers_exchange_had_a_session(migrated_url: str, tmp_path: Path) -> None:
    folder = write_series(tmp_path / "prices")
    settings = tiny_settings(
        migrated_url, source="csv", csv_path=folder, tickers=["AET.L"], history_start=FIRST.isoformat(),
        heartbeat_file=tmp_path / "heartbeat", schedule_timezone="UTC",
    )  # fmt: skip
    jubilee = dt.datetime(2022, 6, 2, 21, 0, tzinfo=UTC)
    NightlyService(settings, clock=lambda: jubilee).fire()
    assert forecasts(migrated_url, "AET.L") == []  # London was closed: nothing to do
    both = NightlyService(settings.model_copy(update={"tickers": ["AET.L", "TSLA"]}), clock=lambda: jubilee)
    both.fire()  # New York traded: the cycle runs, London's last session is forecast
    assert forecasts(migrated_url, "AET.L") == [(dt.date(2022, 6, 1), dt.date(2022, 6, 6))]
    assert forecasts(migrated_url, "TSLA") == [(dt.date(2022, 6, 2), dt.date(2022, 6, 3))]


def test_calendar_settings_take_tickers_with_equals_signs_and_refuse_contradictions() -> None:
    assert Settings(calendars="EURUSD=X=XLON").calendars == {"EURUSD=X": "XLON"}
    with pytest.raises(ValueError, match=r"AET.L is given two calendars \(XLON, XTKS\)"):
        Settings(calendars="AET.L=XLON,aet.l=XTKS")


def test_a_calendar_that_cannot_be_built_or_has_ended_is_one_line() -> None:
    with pytest.raises(NightcastError, match=r"^exchange calendar 'XTAE' cannot be used \(ValueError\)$"):
        Calendars(by_ticker={"TEVA.TA": "XTAE"})("TEVA.TA")
    shanghai = get_sessions("XSHG")
    assert shanghai.last_closed_session(dt.datetime.combine(shanghai.last, dt.time(12), UTC)) == shanghai.last
    with pytest.raises(
        NightcastError, match=r"^the XSHG calendar ends on \d{4}-12-31: update exchange_calendars"
    ):
        shanghai.last_closed_session(
            dt.datetime.combine(shanghai.last + dt.timedelta(days=5), dt.time(), UTC)
        )


def test_a_ticker_whose_calendar_fails_is_reported_and_the_others_run(
    migrated_url: str, tmp_path: Path
) -> None:
    """TEVA.TA on an unusable calendar, 600519.SS on one that has ended: each fails alone in
    one line; the scheduler still fires for TSLA, whose exchange traded."""
    shanghai_end = get_sessions("XSHG").last
    after = dt.datetime.combine(
        get_sessions("XNYS").next_session(shanghai_end + dt.timedelta(days=3)), dt.time(23), UTC
    )
    folder = write_series(tmp_path / "prices")
    settings = tiny_settings(
        migrated_url, source="csv", csv_path=folder, history_start=FIRST.isoformat(),
        tickers=["TSLA", "TEVA.TA", "600519.SS"], calendars="TEVA.TA=XTAE", heartbeat_file=tmp_path / "beat",
        schedule_timezone="UTC",
    )  # fmt: skip
    service = NightlyService(settings, clock=lambda: after)
    assert service.has_gap()
    service.fire()
    with get_engine(migrated_url).connect() as conn:
        run = conn.execute(sa.select(job_runs)).one()
    assert run.status == "partial"
    assert run.details["TSLA"]["status"] == "ok"
    assert run.details["TEVA.TA"]["error"] == "TEVA.TA: exchange calendar 'XTAE' cannot be used (ValueError)"
    assert run.details["600519.SS"]["error"].startswith("600519.SS: the XSHG calendar ends on")
