"""Initial schema: prices, model versions, predictions, rolling metrics, job runs, revisions.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREDICTION_ERRORS = """
CREATE VIEW prediction_errors AS
SELECT p.ticker, p.target_date, p.model, p.as_of_date, p.predicted_close,
       a.close AS actual_close,
       p.predicted_close - a.close AS error,
       100.0 * ABS(p.predicted_close - a.close) / a.close AS abs_pct_error
FROM predictions p
JOIN prices a ON a.ticker = p.ticker AND a.date = p.target_date
"""

Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "prices",
        sa.Column("ticker", sa.String(16), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("open", sa.Double(), nullable=False),
        sa.Column("high", sa.Double(), nullable=False),
        sa.Column("low", sa.Double(), nullable=False),
        sa.Column("close", sa.Double(), nullable=False),
        sa.Column("adj_close", sa.Double(), nullable=False),
        sa.Column("volume", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("ingested_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("ticker", "date", name="pk_prices"),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", Stamp, nullable=False),
        sa.Column("finished_at", Stamp, nullable=True),
        sa.Column("tickers", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_job_runs"),
    )
    op.create_index("ix_job_runs_started_at", "job_runs", ["started_at"])
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ticker", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("trained_from", sa.Date(), nullable=False),
        sa.Column("trained_through", sa.Date(), nullable=False),
        sa.Column("n_samples", sa.Integer(), nullable=False),
        sa.Column("epochs", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("train_loss", sa.Double(), nullable=True),
        sa.Column("val_loss", sa.Double(), nullable=True),
        sa.Column("artifact", sa.LargeBinary(), nullable=True),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["model_versions.id"], name="fk_model_versions_parent_id_model_versions"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
    )
    op.create_index(
        "ix_model_versions_ticker_trained_through", "model_versions", ["ticker", "trained_through"]
    )
    op.create_table(
        "predictions",
        sa.Column("ticker", sa.String(16), nullable=False),
        sa.Column("target_date", sa.Date(), nullable=False),
        sa.Column("model", sa.String(16), nullable=False),
        sa.Column("as_of_date", sa.Date(), nullable=False),
        sa.Column("predicted_close", sa.Double(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name="fk_predictions_model_version_id_model_versions",
        ),
        sa.ForeignKeyConstraint(["run_id"], ["job_runs.id"], name="fk_predictions_run_id_job_runs"),
        sa.PrimaryKeyConstraint("ticker", "target_date", "model", name="pk_predictions"),
    )
    op.create_index("ix_predictions_target_date", "predictions", ["target_date"])
    op.create_index("ix_predictions_ticker_as_of_date", "predictions", ["ticker", "as_of_date"])
    op.create_table(
        "rolling_metrics",
        sa.Column("ticker", sa.String(16), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("model", sa.String(16), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("rmse", sa.Double(), nullable=False),
        sa.Column("mae", sa.Double(), nullable=False),
        sa.Column("mape", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("ticker", "date", "model", "window_days", name="pk_rolling_metrics"),
    )
    op.create_table(
        "price_revisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ticker", sa.String(16), nullable=False),
        sa.Column("detected_at", Stamp, nullable=False),
        sa.Column("first_revised_date", sa.Date(), nullable=False),
        sa.Column("last_revised_date", sa.Date(), nullable=False),
        sa.Column("factor", sa.Double(), nullable=False),
        sa.Column("sessions_changed", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_price_revisions"),
    )
    op.create_index("ix_price_revisions_ticker_detected_at", "price_revisions", ["ticker", "detected_at"])
    op.execute(PREDICTION_ERRORS)


def downgrade() -> None:
    op.execute("DROP VIEW prediction_errors")
    op.drop_table("price_revisions")
    op.drop_table("rolling_metrics")
    op.drop_table("predictions")
    op.drop_table("model_versions")
    op.drop_table("job_runs")
    op.drop_table("prices")
