"""A model is an entry: a toy model added to the list inside this test, and no file of the
product changed, has its rows in every table and view, in `status --json` and in the report."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from job.cli import main
from job.db import get_engine
from job.forecast import entries
from job.forecast.evaluate import summarize
from job.forecast.models import Forecast
from job.forecast.session import Session
from job.ingest.sources import make_source
from job.pipeline import Cycle
from tests.conftest import tiny_settings

START, END = date(2020, 5, 1), date(2020, 6, 30)
DRIFT_SESSIONS = 20


class Drift:
    """The last close moved on by the mean log return of the last DRIFT_SESSIONS sessions."""

    name, versioned = "drift", False

    def forecast(self, session: Session) -> Forecast:
        closes = session.bars.close[-DRIFT_SESSIONS - 1 :]
        point = session.last_close * float(np.exp(np.mean(np.diff(np.log(closes)))))
        return session.forecast(self.name, point, session.track.scores(self.name, session.sigma))


@pytest.fixture
def drift() -> Iterator[Drift]:
    model = Drift()
    entries.MODELS.append(model)
    yield model
    entries.MODELS.remove(model)


def one(url: str, sql: str, **params: object) -> sa.Row:
    with get_engine(url).connect() as conn:
        return conn.execute(sa.text(sql), params).one()


def test_a_toy_model_added_to_the_list_is_stored_evaluated_shown_and_drawn(
    migrated_url: str, drift: Drift, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tiny_settings(migrated_url)
    report = Cycle(settings, make_source("sample")).backfill(["TSLA"], start=START, as_of=END)
    assert report.status == "succeeded", [t.error for t in report.tickers]

    with get_engine(migrated_url).connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT p.target_date, p.predicted_close, p.model_version_id, n.predicted_close AS last "
                "FROM predictions p JOIN predictions n ON n.ticker = p.ticker "
                "AND n.target_date = p.target_date AND n.model = 'naive' "
                "WHERE p.model = 'drift' ORDER BY p.target_date"
            )
        ).all()
        closes = dict(conn.execute(sa.text("SELECT date, close FROM prices WHERE ticker = 'TSLA'")).all())
    sessions = one(migrated_url, "SELECT COUNT(*) AS n FROM predictions WHERE model = 'lstm'").n
    assert len(rows) == sessions > 30
    assert all(r.model_version_id is None for r in rows)  # not the network's version
    # Its forecasts are its own: the last close moved by the trailing drift, never the close itself.
    by_day = sorted(closes)
    for row in rows[:3]:
        as_of = by_day.index(min(d for d in by_day if str(d) >= str(row.target_date))) - 1
        window = np.array([closes[d] for d in by_day[as_of - DRIFT_SESSIONS : as_of + 1]])
        expected = window[-1] * np.exp(np.mean(np.diff(np.log(window))))
        assert row.predicted_close == pytest.approx(expected, rel=1e-12) and row.predicted_close != row.last

    errors = one(
        migrated_url,
        "SELECT COUNT(*) AS n, MAX(inside_95) AS held FROM prediction_errors WHERE model = 'drift'",
    )
    assert errors.n == len(rows) - 1  # the last forecast's target is not stored yet
    skill = one(migrated_url, "SELECT * FROM model_skill WHERE model = 'drift' AND window_days = 20")
    assert (
        skill.n == 20 and skill.rmse > 0 and skill.rmse_ratio == pytest.approx(skill.rmse / skill.naive_rmse)
    )
    assert skill.dm_pvalue is not None and skill.coverage_95 is not None  # tested against naive, intervals
    with get_engine(migrated_url).connect() as conn:
        summary = summarize(conn, "TSLA", START, date.max)
    assert summary is not None and summary.moves("drift") == summary.sessions == errors.n
    assert summary.ratio("drift") == pytest.approx(summary.models["drift"]["rmse"] / summary.naive["rmse"])

    assert main(["status", "--json", "--database-url", migrated_url]) == 0
    status = json.loads(capsys.readouterr().out)["tickers"]["TSLA"]
    assert status["forecasts"]["drift"]["predicted_close"] == rows[-1].predicted_close
    assert {row["model"] for row in status["skill"]} == {"lstm", "drift"}

    out = tmp_path / "report"
    assert main(["report", "--out", str(out), "--database-url", migrated_url]) == 0
    page = (out / "index.html").read_text()
    assert '<tr data-model="drift">' in page and 'data-model="lstm"' in page


def test_adding_a_model_to_a_database_with_history_changes_nothing_of_the_others(
    migrated_url: str, make_db: Callable[[], str]
) -> None:
    """Its earlier absence is no gap: the other models keep their track, metrics and intervals."""
    plain = make_db()
    before, after = date(2020, 6, 1), date(2020, 7, 15)
    for url in (migrated_url, plain):
        Cycle(tiny_settings(url), make_source("sample")).backfill(["TSLA"], start=START, as_of=before)
    entries.MODELS.append(drift := Drift())
    try:
        report = Cycle(tiny_settings(migrated_url), make_source("sample")).backfill(
            ["TSLA"], start=START, as_of=after
        )
    finally:
        entries.MODELS.remove(drift)
    assert report.status == "succeeded", [t.error for t in report.tickers]
    Cycle(tiny_settings(plain), make_source("sample")).backfill(["TSLA"], start=START, as_of=after)

    def rows(url: str, table: str) -> list[tuple]:
        with get_engine(url).connect() as conn:
            found = conn.execute(
                sa.text(f"SELECT * FROM {table} WHERE model <> 'drift' ORDER BY target_date, model")
                if table == "predictions"
                else sa.text(
                    f"SELECT * FROM {table} WHERE model <> 'drift' ORDER BY date, model, window_days"
                )
            )
            skip = {"created_at", "run_id", "model_version_id"}
            return [tuple(v for k, v in r._mapping.items() if k not in skip) for r in found]

    for table in ("predictions", "rolling_metrics"):
        assert rows(migrated_url, table) == rows(plain, table), table
    drift_rows = one(
        migrated_url, "SELECT COUNT(*) AS n, MIN(as_of_date) AS first FROM predictions WHERE model = 'drift'"
    )
    assert drift_rows.n > 20 and str(drift_rows.first) >= str(before)
