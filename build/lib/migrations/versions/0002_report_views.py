"""Report views: the latest forecast per ticker and model, and the latest rolling skill.

Views, not tables: they hold no data of their own, so they can never disagree with
`predictions`, `prices` and `rolling_metrics`. The SQL is the same on SQLite and PostgreSQL
(no DISTINCT ON, no FILTER; "latest" is a join on a MAX subquery), so a query written
against one database runs unchanged on the other.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The close at as_of_date is the last price the forecast saw; a LEFT JOIN keeps a forecast
# visible even if that price were missing (the change columns are then NULL).
LATEST_PREDICTIONS = """
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

# Both models are always evaluated together, so the lstm and naive rows of the newest date
# per (ticker, window) exist side by side; n tells a partial window (n < window_days) apart.
MODEL_SKILL = """
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


def upgrade() -> None:
    op.execute(LATEST_PREDICTIONS)
    op.execute(MODEL_SKILL)


def downgrade() -> None:
    op.execute("DROP VIEW model_skill")
    op.execute("DROP VIEW latest_predictions")
