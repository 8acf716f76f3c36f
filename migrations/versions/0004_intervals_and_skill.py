"""Prediction intervals on every forecast, and interval and skill columns in rolling metrics.

`predictions` gains lower_80, upper_80, lower_95, upper_95, and on lstm rows network_close
(the network's own forecast, before the guard decides how much of it to use); `rolling_metrics` gains
coverage_80, coverage_95, width_95, winkler_95 and, on lstm rows, dm_pvalue, hit_rate and
up_rate. All NULL on rows written before. The views show them: `prediction_errors` the
bounds and whether the actual close fell inside, `latest_predictions` the bounds,
`model_skill` the new columns of both models side by side.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BOUNDS = ("lower_80", "upper_80", "lower_95", "upper_95", "network_close")
METRICS = ("coverage_80", "coverage_95", "width_95", "winkler_95", "dm_pvalue", "hit_rate", "up_rate")

PREDICTION_ERRORS = """
CREATE VIEW prediction_errors AS
SELECT p.ticker, p.target_date, p.model, p.as_of_date, p.predicted_close,
       a.close AS actual_close,
       p.predicted_close - a.close AS error,
       100.0 * ABS(p.predicted_close - a.close) / a.close AS abs_pct_error,
       p.lower_80, p.upper_80, p.lower_95, p.upper_95, p.network_close,
       CASE WHEN p.lower_80 IS NOT NULL
            THEN CASE WHEN a.close BETWEEN p.lower_80 AND p.upper_80 THEN 1 ELSE 0 END END AS inside_80,
       CASE WHEN p.lower_95 IS NOT NULL
            THEN CASE WHEN a.close BETWEEN p.lower_95 AND p.upper_95 THEN 1 ELSE 0 END END AS inside_95
FROM predictions p
JOIN prices a ON a.ticker = p.ticker AND a.date = p.target_date
"""

LATEST_PREDICTIONS = """
CREATE VIEW latest_predictions AS
SELECT p.ticker, p.model, p.as_of_date, p.target_date, p.predicted_close,
       c.close AS last_close,
       p.predicted_close - c.close AS implied_change,
       100.0 * (p.predicted_close - c.close) / CAST(c.close AS DOUBLE PRECISION)
           AS implied_change_pct,
       p.model_version_id,
       p.lower_80, p.upper_80, p.lower_95, p.upper_95
FROM predictions p
JOIN (SELECT ticker, model, MAX(target_date) AS target_date
      FROM predictions GROUP BY ticker, model) newest
  ON newest.ticker = p.ticker AND newest.model = p.model AND newest.target_date = p.target_date
LEFT JOIN prices c ON c.ticker = p.ticker AND c.date = p.as_of_date
"""

MODEL_SKILL = """
CREATE VIEW model_skill AS
SELECT l.ticker, l.window_days, l.date, l.n,
       l.rmse AS lstm_rmse, nv.rmse AS naive_rmse,
       CASE WHEN nv.rmse > 0
            THEN CAST(l.rmse AS DOUBLE PRECISION) / CAST(nv.rmse AS DOUBLE PRECISION)
       END AS rmse_ratio,
       l.dm_pvalue, l.hit_rate, l.up_rate,
       l.coverage_80, l.coverage_95, l.width_95, l.winkler_95,
       nv.coverage_80 AS naive_coverage_80, nv.coverage_95 AS naive_coverage_95,
       nv.width_95 AS naive_width_95, nv.winkler_95 AS naive_winkler_95
FROM rolling_metrics l
JOIN rolling_metrics nv
  ON nv.ticker = l.ticker AND nv.date = l.date AND nv.window_days = l.window_days
 AND nv.model = 'naive'
JOIN (SELECT ticker, window_days, MAX(date) AS date
      FROM rolling_metrics GROUP BY ticker, window_days) newest
  ON newest.ticker = l.ticker AND newest.window_days = l.window_days AND newest.date = l.date
WHERE l.model = 'lstm'
"""

# As 0001 and 0002 created them, for downgrade.
OLD_PREDICTION_ERRORS = """
CREATE VIEW prediction_errors AS
SELECT p.ticker, p.target_date, p.model, p.as_of_date, p.predicted_close,
       a.close AS actual_close,
       p.predicted_close - a.close AS error,
       100.0 * ABS(p.predicted_close - a.close) / a.close AS abs_pct_error
FROM predictions p
JOIN prices a ON a.ticker = p.ticker AND a.date = p.target_date
"""

OLD_LATEST_PREDICTIONS = """
CREATE VIEW latest_predictions AS
SELECT p.ticker, p.model, p.as_of_date, p.target_date, p.predicted_close,
       c.close AS last_close,
       p.predicted_close - c.close AS implied_change,
       100.0 * (p.predicted_close - c.close) / CAST(c.close AS DOUBLE PRECISION)
           AS implied_change_pct,
       p.model_version_id
FROM predictions p
JOIN (SELECT ticker, model, MAX(target_date) AS target_date
      FROM predictions GROUP BY ticker, model) newest
  ON newest.ticker = p.ticker AND newest.model = p.model AND newest.target_date = p.target_date
LEFT JOIN prices c ON c.ticker = p.ticker AND c.date = p.as_of_date
"""

OLD_MODEL_SKILL = """
CREATE VIEW model_skill AS
SELECT l.ticker, l.window_days, l.date, l.n,
       l.rmse AS lstm_rmse, nv.rmse AS naive_rmse,
       CASE WHEN nv.rmse > 0
            THEN CAST(l.rmse AS DOUBLE PRECISION) / CAST(nv.rmse AS DOUBLE PRECISION)
       END AS rmse_ratio
FROM rolling_metrics l
JOIN rolling_metrics nv
  ON nv.ticker = l.ticker AND nv.date = l.date AND nv.window_days = l.window_days
 AND nv.model = 'naive'
JOIN (SELECT ticker, window_days, MAX(date) AS date
      FROM rolling_metrics GROUP BY ticker, window_days) newest
  ON newest.ticker = l.ticker AND newest.window_days = l.window_days AND newest.date = l.date
WHERE l.model = 'lstm'
"""

VIEWS = ("model_skill", "latest_predictions", "prediction_errors")


def upgrade() -> None:
    for view in VIEWS:
        op.execute(f"DROP VIEW {view}")
    for column in BOUNDS:
        op.add_column("predictions", sa.Column(column, sa.Double(), nullable=True))
    for column in METRICS:
        op.add_column("rolling_metrics", sa.Column(column, sa.Double(), nullable=True))
    for sql in (PREDICTION_ERRORS, LATEST_PREDICTIONS, MODEL_SKILL):
        op.execute(sql)


def downgrade() -> None:
    for view in VIEWS:
        op.execute(f"DROP VIEW {view}")
    for table, columns in (("rolling_metrics", METRICS), ("predictions", BOUNDS)):
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_column(column)
    for sql in (OLD_PREDICTION_ERRORS, OLD_LATEST_PREDICTIONS, OLD_MODEL_SKILL):
        op.execute(sql)
