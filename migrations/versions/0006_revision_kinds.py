"""`price_revisions.kind`: a re-basing of the whole history, or an accepted correction.

A `rebase` is one exact factor from the old units to the new one, applied to every stored
session and every stored number in price units (`factor`); a `correction` is a change of
some sessions' prices that a person accepted with `nightcast ingest --accept`, each
corrected session's forecasts rescaled by its own ratio. Rows written before are rebases.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("price_revisions") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="rebase"))


def downgrade() -> None:
    with op.batch_alter_table("price_revisions") as batch:
        batch.drop_column("kind")
