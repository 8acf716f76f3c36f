"""`model_skill` has a row per model besides the reference (`naive`), named in its new
`model` column, with that model's RMSE in its new `rmse` column: a model added to the list
(job.forecast.entries) shows there with no further migration. With the default models the
rows are those of before (one per ticker and window, `model` = 'lstm'); `lstm_rmse` keeps
its name and equals `rmse`.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from importlib import import_module

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_0004 = import_module("migrations.versions.0004_intervals_and_skill")
MODEL_SKILL = _0004.MODEL_SKILL.replace(
    "nv.winkler_95 AS naive_winkler_95\n", "nv.winkler_95 AS naive_winkler_95,\n       l.model, l.rmse\n"
).replace("WHERE l.model = 'lstm'\n", "WHERE l.model <> 'naive'\n")


def upgrade() -> None:
    assert "l.model, l.rmse" in MODEL_SKILL and "<> 'naive'" in MODEL_SKILL
    op.execute("DROP VIEW model_skill")
    op.execute(MODEL_SKILL)


def downgrade() -> None:
    op.execute("DROP VIEW model_skill")
    op.execute(_0004.MODEL_SKILL)
