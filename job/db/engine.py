"""One engine per database URL, configured so SQLite behaves like a careful server."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import sqlalchemy as sa


def sqlite_file(url: str) -> str | None:
    """The file path of a SQLite URL as written (None: not SQLite, in memory, or a `file:` URI)."""
    parsed = sa.make_url(url)
    path = parsed.database or ":memory:"
    if parsed.get_backend_name() != "sqlite" or path == ":memory:" or path.startswith("file:"):
        return None
    return path


def get_engine(url: str) -> sa.Engine:
    """Engines are pooled and cached: every stage of a cycle shares the connections. A
    relative SQLite path is the file in the working directory of the first call, so one
    cached engine never serves another directory's `nightcast.db`."""
    path = sqlite_file(url)
    if path is not None:
        url = sa.make_url(url).set(database=os.path.abspath(path)).render_as_string(hide_password=False)
    return _engine(url)


@cache
def _engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        # Let SQLAlchemy issue BEGIN itself so a transaction really starts where we say.
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # autocommit at the driver; SQLAlchemy issues BEGIN
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL cannot corrupt the database; a power cut may lose the last commits,
    # which a rerun recomputes. FULL would fsync every (ticker, session) commit.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
