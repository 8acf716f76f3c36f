"""The schema comes only from migrations, and migrations agree with the table definitions."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from job.db import get_engine, metadata
from job.db.migrate import alembic_config, current_revision, head_revision, upgrade_to_head


def test_migrated_schema_equals_table_definitions(migrated_url: str) -> None:
    with get_engine(migrated_url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_migrate_twice_is_a_no_op(db_url: str) -> None:
    assert upgrade_to_head(db_url) == (None, head_revision(db_url))
    assert upgrade_to_head(db_url) == (head_revision(db_url), head_revision(db_url))


def test_downgrade_to_base_removes_everything_and_upgrade_restores_it(migrated_url: str) -> None:
    engine = get_engine(migrated_url)
    with engine.begin() as conn:
        config = alembic_config(migrated_url)
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        assert set(inspector.get_table_names()) <= {"alembic_version"}
        assert inspector.get_view_names() == []
    assert current_revision(migrated_url) is None
    upgrade_to_head(migrated_url)
    with engine.connect() as conn:
        assert "prediction_errors" in sa.inspect(conn).get_view_names()


def store_a_close_and_two_forecasts(conn: sa.Connection) -> None:
    """TSLA's close of 2020-07-31 (200), a forecast for it (190) and one not yet matured."""
    conn.execute(
        sa.text(
            "INSERT INTO prices VALUES ('TSLA', '2020-07-31', 1, 2, 0.5, 200, 200, 10, 'csv',"
            " '2020-08-01 00:00:00+00:00')"
        )
    )
    conn.execute(
        sa.text(
            "INSERT INTO predictions (ticker, target_date, model, as_of_date, predicted_close,"
            " created_at) VALUES ('TSLA', '2020-07-31', 'naive', '2020-07-30', 190,"
            " '2020-07-31 00:00:00+00:00'), ('TSLA', '2020-08-03', 'naive', '2020-07-31',"
            " 200, '2020-08-01 00:00:00+00:00')"
        )
    )


def test_prediction_errors_view_joins_actual_closes(migrated_url: str) -> None:
    with get_engine(migrated_url).begin() as conn:
        store_a_close_and_two_forecasts(conn)
        rows = conn.execute(
            sa.text("SELECT target_date, actual_close, error, abs_pct_error FROM prediction_errors")
        ).all()
    assert len(rows) == 1  # the unmatured forecast for 2020-08-03 has no actual yet
    assert str(rows[0].target_date) == "2020-07-31"
    assert (rows[0].actual_close, rows[0].error) == (200, -10)
    assert abs(rows[0].abs_pct_error - 5.0) < 1e-9


@pytest.mark.slow
def test_the_alembic_command_line_works_from_the_repository(db_url: str) -> None:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "NIGHTCAST_DATABASE_URL": db_url}

    def alembic(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "alembic", *args], cwd=root, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    alembic("upgrade", "head")
    assert current_revision(db_url) == head_revision(db_url)
    alembic("downgrade", "base")
    assert current_revision(db_url) is None


def test_0003_keys_sqlite_prices_by_ticker_and_date_and_keeps_every_row(db_url: str) -> None:
    engine = get_engine(db_url)

    def migrate(step: Callable[..., None], revision: str) -> None:
        with engine.begin() as conn:
            config = alembic_config(db_url)
            config.attributes["connection"] = conn
            step(config, revision)

    def table_sql() -> str:
        with engine.connect() as conn:
            return conn.scalar(sa.text("SELECT sql FROM sqlite_master WHERE name = 'prices'"))

    def closes() -> list[tuple[object, ...]]:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT ticker, actual_close FROM prediction_errors")).all()

    migrate(command.upgrade, "0002")
    with engine.begin() as conn:
        store_a_close_and_two_forecasts(conn)
    migrate(command.upgrade, "head")
    assert closes() == [("TSLA", 200)], "rows and the views that read them survive"
    if engine.dialect.name == "sqlite":
        assert table_sql().rstrip().endswith("WITHOUT ROWID")
    migrate(command.downgrade, "0002")
    assert closes() == [("TSLA", 200)]
    if engine.dialect.name == "sqlite":
        assert "WITHOUT ROWID" not in table_sql()
