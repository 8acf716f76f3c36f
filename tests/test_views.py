"""The report views return exactly what their definition promises, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from alembic import command

from job.db import get_engine, predictions, prices, rolling_metrics
from job.db.migrate import alembic_config, current_revision, upgrade_to_head
from job.db.schema import latest_predictions, model_skill

STAMP = "2020-08-01 00:00:00+00:00"


def add_prices(conn: sa.Connection, ticker: str, closes: dict[str, float]) -> None:
    conn.execute(
        sa.insert(prices),
        [
            {
                "ticker": ticker,
                "date": date.fromisoformat(day),
                "open": close,
                "high": close,
                "low": close,
                "close": close,
                "adj_close": close,
                "volume": 1,
                "source": "csv",
                "ingested_at": datetime(2020, 8, 1, tzinfo=UTC),
            }
            for day, close in closes.items()
        ],
    )


def add_predictions(conn: sa.Connection, rows: list[tuple[str, str, str, str, float]]) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO predictions (ticker, target_date, model, as_of_date, predicted_close, created_at)"
            f" VALUES (:ticker, :target, :model, :as_of, :value, '{STAMP}')"
        ),
        [dict(zip(("ticker", "target", "model", "as_of", "value"), row, strict=True)) for row in rows],
    )


def add_metrics(conn: sa.Connection, rows: list[tuple[str, str, str, int, int, float]]) -> None:
    conn.execute(
        sa.insert(rolling_metrics),
        [
            {
                "ticker": t,
                "date": date.fromisoformat(d),
                "model": m,
                "window_days": w,
                "n": n,
                "rmse": rmse,
                "mae": rmse / 2,
                "mape": 1.0,
            }
            for t, d, m, w, n, rmse in rows
        ],
    )


def test_latest_predictions_is_the_newest_forecast_with_its_implied_change(migrated_url: str) -> None:
    with get_engine(migrated_url).begin() as conn:
        add_prices(conn, "TSLA", {"2020-07-29": 100, "2020-07-30": 200, "2020-07-31": 250})
        add_prices(conn, "AAPL", {"2020-07-30": 80})
        add_predictions(
            conn,
            [
                ("TSLA", "2020-07-30", "lstm", "2020-07-29", 110),
                ("TSLA", "2020-07-30", "naive", "2020-07-29", 100),
                ("TSLA", "2020-07-31", "lstm", "2020-07-30", 210),  # lstm's newest
                ("TSLA", "2020-07-31", "naive", "2020-07-30", 200),
                ("TSLA", "2020-08-03", "naive", "2020-07-31", 250),  # naive one session ahead
                ("AAPL", "2020-07-31", "lstm", "2020-07-30", 78),  # integers: no integer division
                ("AAPL", "2020-07-31", "naive", "2020-07-30", 80),
            ],
        )
        rows = conn.execute(
            sa.select(latest_predictions).order_by(latest_predictions.c.ticker, latest_predictions.c.model)
        ).all()
    got = [
        (r.ticker, r.model, r.as_of_date, r.target_date, r.predicted_close, r.last_close, r.implied_change)
        for r in rows
    ]
    assert got == [
        ("AAPL", "lstm", date(2020, 7, 30), date(2020, 7, 31), 78, 80, -2),
        ("AAPL", "naive", date(2020, 7, 30), date(2020, 7, 31), 80, 80, 0),
        ("TSLA", "lstm", date(2020, 7, 30), date(2020, 7, 31), 210, 200, 10),
        ("TSLA", "naive", date(2020, 7, 31), date(2020, 8, 3), 250, 250, 0),
    ]
    assert [r.implied_change_pct for r in rows] == pytest.approx([-2.5, 0.0, 5.0, 0.0], abs=1e-12)
    assert [r.model_version_id for r in rows] == [None] * 4


def test_model_skill_is_the_newest_rolling_rmse_per_window_and_its_ratio(migrated_url: str) -> None:
    with get_engine(migrated_url).begin() as conn:
        add_metrics(
            conn,
            [
                ("TSLA", "2020-07-30", "lstm", 5, 5, 9.0),
                ("TSLA", "2020-07-30", "naive", 5, 5, 3.0),
                ("TSLA", "2020-07-31", "lstm", 5, 5, 3.0),  # newest 5-session window
                ("TSLA", "2020-07-31", "naive", 5, 5, 4.0),
                ("TSLA", "2020-07-31", "lstm", 20, 12, 5.0),  # a partial window says so in n
                ("TSLA", "2020-07-31", "naive", 20, 12, 0.0),  # ratio undefined, not an error
                ("AAPL", "2020-07-29", "lstm", 5, 5, 2.0),
                ("AAPL", "2020-07-29", "naive", 5, 5, 1.0),
            ],
        )
        rows = conn.execute(
            sa.select(model_skill).order_by(model_skill.c.ticker, model_skill.c.window_days)
        ).all()
    assert [tuple(r)[:7] for r in rows] == [
        ("AAPL", 5, date(2020, 7, 29), 5, 2.0, 1.0, 2.0),
        ("TSLA", 5, date(2020, 7, 31), 5, 3.0, 4.0, 0.75),
        ("TSLA", 20, date(2020, 7, 31), 12, 5.0, 0.0, None),
    ]
    assert all(value is None for r in rows for value in tuple(r)[7:-2])  # rows without intervals
    assert [(r.model, r.rmse) for r in rows] == [("lstm", r.lstm_rmse) for r in rows]


def test_model_skill_has_a_row_per_model_besides_naive(migrated_url: str) -> None:
    with get_engine(migrated_url).begin() as conn:
        add_metrics(
            conn,
            [
                ("TSLA", "2020-07-31", "lstm", 5, 5, 3.0),
                ("TSLA", "2020-07-31", "naive", 5, 5, 4.0),
                ("TSLA", "2020-07-31", "drift", 5, 5, 5.0),
            ],
        )
        rows = conn.execute(sa.select(model_skill).order_by(model_skill.c.model)).all()
    assert [(r.model, r.rmse, r.naive_rmse, r.rmse_ratio) for r in rows] == [
        ("drift", 5.0, 4.0, 1.25),
        ("lstm", 3.0, 4.0, 0.75),
    ]


def test_model_skill_shows_both_models_interval_columns_and_the_lstm_tests(migrated_url: str) -> None:
    with get_engine(migrated_url).begin() as conn:
        add_metrics(
            conn, [("TSLA", "2020-07-31", "lstm", 5, 5, 3.0), ("TSLA", "2020-07-31", "naive", 5, 5, 4.0)]
        )
        for model, offset in (("lstm", 0.0), ("naive", 0.5)):
            conn.execute(
                sa.update(rolling_metrics)
                .where(rolling_metrics.c.model == model)
                .values(
                    coverage_80=[0.8, 0.85][offset > 0], coverage_95=[0.9, 0.95][offset > 0],
                    width_95=2.0 + offset,
                    winkler_95=3.0 + offset, dm_pvalue=0.04 if model == "lstm" else None,
                    hit_rate=0.6 if model == "lstm" else None, up_rate=0.5 if model == "lstm" else None,
                )
            )  # fmt: skip
        row = conn.execute(sa.select(model_skill)).one()
    assert (row.dm_pvalue, row.hit_rate, row.up_rate) == (0.04, 0.6, 0.5)
    assert (row.coverage_80, row.coverage_95, row.width_95, row.winkler_95) == (0.8, 0.9, 2.0, 3.0)
    assert (row.naive_coverage_80, row.naive_coverage_95, row.naive_width_95, row.naive_winkler_95) == (
        0.85,
        0.95,
        2.5,
        3.5,
    )


def test_prediction_errors_says_whether_the_close_fell_inside_each_interval(migrated_url: str) -> None:
    with get_engine(migrated_url).begin() as conn:
        add_prices(conn, "TSLA", {"2020-07-30": 200, "2020-07-31": 250})
        add_predictions(
            conn,
            [
                ("TSLA", "2020-07-31", "lstm", "2020-07-30", 210),
                ("TSLA", "2020-07-30", "lstm", "2020-07-29", 190),
            ],
        )
        conn.execute(
            sa.update(predictions)
            .where(predictions.c.target_date == date(2020, 7, 31))
            .values(lower_80=240.0, upper_80=249.0, lower_95=200.0, upper_95=250.0)  # 250: on the edge
        )
        rows = conn.execute(
            sa.text(
                "SELECT target_date, inside_80, inside_95, lower_95 FROM prediction_errors "
                "ORDER BY target_date"
            )
        ).all()
    assert [tuple(r)[1:] for r in rows] == [(None, None, None), (0, 1, 200.0)]


def test_views_are_empty_on_an_empty_database(migrated_url: str) -> None:
    with get_engine(migrated_url).connect() as conn:
        assert conn.execute(sa.select(latest_predictions)).all() == []
        assert conn.execute(sa.select(model_skill)).all() == []
        assert conn.execute(sa.select(sa.func.count()).select_from(predictions)).scalar() == 0


def test_downgrade_to_0001_drops_only_the_report_views(migrated_url: str) -> None:
    engine = get_engine(migrated_url)
    with engine.begin() as conn:
        config = alembic_config(migrated_url)
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    with engine.connect() as conn:
        assert sa.inspect(conn).get_view_names() == ["prediction_errors"]
    assert current_revision(migrated_url) == "0001"
    upgrade_to_head(migrated_url)
    with engine.connect() as conn:
        assert set(sa.inspect(conn).get_view_names()) == {
            "prediction_errors",
            "latest_predictions",
            "model_skill",
        }
