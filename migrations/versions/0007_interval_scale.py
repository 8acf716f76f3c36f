"""`predictions` says what scaled its intervals: `scale` (the next log return's standard
deviation the intervals used), `network_scale` (the network's own forecast of it) and
`scale_source` ('network' or 'baseline'). NULL on rows written before. The views
`prediction_errors` and `latest_predictions` show all three.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence
from importlib import import_module

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_0004 = import_module("migrations.versions.0004_intervals_and_skill")
SCALE = "p.scale, p.network_scale, p.scale_source"
PREDICTION_ERRORS = _0004.PREDICTION_ERRORS.replace("p.network_close,", f"p.network_close, {SCALE},")
LATEST_PREDICTIONS = _0004.LATEST_PREDICTIONS.replace(
    "p.lower_95, p.upper_95\n", f"p.lower_95, p.upper_95, {SCALE}\n"
)
VIEWS = ("latest_predictions", "prediction_errors")


def upgrade() -> None:
    assert SCALE in PREDICTION_ERRORS and SCALE in LATEST_PREDICTIONS
    for view in VIEWS:
        op.execute(f"DROP VIEW {view}")
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("scale", sa.Double(), nullable=True))
        batch.add_column(sa.Column("network_scale", sa.Double(), nullable=True))
        batch.add_column(sa.Column("scale_source", sa.String(16), nullable=True))
    for sql in (PREDICTION_ERRORS, LATEST_PREDICTIONS):
        op.execute(sql)


def downgrade() -> None:
    for view in VIEWS:
        op.execute(f"DROP VIEW {view}")
    with op.batch_alter_table("predictions") as batch:
        for column in ("scale_source", "network_scale", "scale"):
            batch.drop_column(column)
    for sql in (_0004.PREDICTION_ERRORS, _0004.LATEST_PREDICTIONS):
        op.execute(sql)
