"""Set-based INSERT ... ON CONFLICT DO UPDATE for SQLite and PostgreSQL alike.

Every table with a natural key is written through here, which is what makes re-running a
night or a backfill leave the same rows instead of duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

# SQLite allows 32,766 bound parameters per statement; PostgreSQL 65,535.
_MAX_PARAMS = 30_000


def upsert(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> int:
    """Insert rows, replacing non-key columns where the primary key already exists.

    Rows are sent as multi-row VALUES statements in chunks, which is an order of magnitude
    faster than executemany on both drivers. Returns the number of rows sent.
    """
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    keys = [c.name for c in table.primary_key.columns]
    columns = list(rows[0])
    chunk = max(1, _MAX_PARAMS // len(columns))
    for start in range(0, len(rows), chunk):
        stmt = dialect.insert(table).values(list(rows[start : start + chunk]))
        updates = {c: stmt.excluded[c] for c in columns if c not in keys}
        if updates:
            stmt = stmt.on_conflict_do_update(index_elements=keys, set_=updates)
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=keys)
        conn.execute(stmt)
    return len(rows)
