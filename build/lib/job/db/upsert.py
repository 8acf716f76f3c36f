"""Set-based INSERT ... ON CONFLICT DO UPDATE for SQLite and PostgreSQL alike.

Every table with a natural key is written through here, which is what makes re-running a
night or a backfill leave the same rows instead of duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    keys = [c.name for c in table.primary_key.columns]
    stmt = dialect.insert(table)
    updates = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    if updates:
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_=updates)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    conn.execute(stmt, list(rows))
    return len(rows)
