"""Set-based INSERT ... ON CONFLICT DO UPDATE for SQLite and PostgreSQL alike.

Every table with a natural key is written through here, which is what makes re-running a
night or a backfill leave the same rows instead of duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


def upsert(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> int:
    """Insert rows, replacing non-key columns where the primary key already exists.

    One parameterised statement executed for all rows: SQLAlchemy caches its compiled form
    and sends the rows in multi-row batches ("insertmanyvalues") on both drivers. Returns the
    number of rows sent.
    """
    if not rows:
        return 0
    conn.execute(_statement(table, conn.dialect.name, tuple(rows[0])), list(rows))
    return len(rows)


@cache
def _statement(table: sa.Table, dialect_name: str, columns: tuple[str, ...]) -> sa.Insert:
    """Built once per table and column set: constructing it cost more than a one-row write."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    keys = [c.name for c in table.primary_key.columns]
    stmt = dialect.insert(table)
    updates = {c: stmt.excluded[c] for c in columns if c not in keys}
    if updates:
        return stmt.on_conflict_do_update(index_elements=keys, set_=updates)
    return stmt.on_conflict_do_nothing(index_elements=keys)
