"""`price_flags`: tickers whose latest download was refused, and why.

One row per ticker while its newest bars from the source are refused (invalid values, or a
step that a unit or split error explains; job.ingest.anomalies): the one-line reason, when, from
which source, and the dates the refused bars spanned. A later download that passes and
spans those dates removes the row.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "price_flags",
        sa.Column("ticker", sa.String(16), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_date", sa.Date(), nullable=False),
        sa.Column("last_date", sa.Date(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("ticker", name=op.f("pk_price_flags")),
    )


def downgrade() -> None:
    op.drop_table("price_flags")
