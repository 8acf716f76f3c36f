"""SQLite keeps `prices` in one B-tree keyed by (ticker, date) (WITHOUT ROWID).

A rowid table stores each bar twice, once in the table and once in its primary-key index,
and every read of a ticker's range goes through both. Keyed by the primary key, a bulk
load writes about half as much and ranges read in key order. PostgreSQL has no such
choice to make: nothing changes there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _rebuild(with_rowid=False)


def downgrade() -> None:
    _rebuild(with_rowid=True)


def _rebuild(*, with_rowid: bool) -> None:
    """Copy `prices` into a table of the other kind and put it in its place."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    old = sa.Table("prices", sa.MetaData(), autoload_with=bind)
    new = sa.Table(
        "prices_rebuilt",
        sa.MetaData(),
        *(sa.Column(c.name, c.type, nullable=c.nullable) for c in old.columns),
        sa.PrimaryKeyConstraint("ticker", "date", name="pk_prices"),
        sqlite_with_rowid=with_rowid,
    )
    new.create(bind)
    columns = ", ".join(c.name for c in old.columns)
    op.execute(f"INSERT INTO prices_rebuilt ({columns}) SELECT {columns} FROM prices")
    op.execute("DROP TABLE prices")
    # The views that read `prices` name it and need no change; legacy mode renames the
    # table without re-checking them, which would fail while `prices` is briefly missing.
    op.execute("PRAGMA legacy_alter_table = ON")
    op.execute("ALTER TABLE prices_rebuilt RENAME TO prices")
    op.execute("PRAGMA legacy_alter_table = OFF")
