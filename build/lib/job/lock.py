"""One cycle at a time per database.

PostgreSQL: a session-level advisory lock, keyed by the schema so that separate schemas
in one database do not block each other. SQLite: an OS file lock beside the database
file. Both are released by the operating system or the server when the holder dies, so a
killed run never leaves a stale lock behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import filelock
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from job.db import get_engine
from job.errors import NightcastError

_PG_KEY = "hashtext(current_schema() || '/nightcast-cycle')"


class LockBusy(NightcastError):
    """Another cycle holds the lock and the caller chose not to wait."""


@contextmanager
def cycle_lock(url: str, *, wait: bool) -> Iterator[None]:
    """Hold the database's cycle lock for the duration of the block."""
    if make_url(url).get_backend_name() == "postgresql":
        with _advisory_lock(url, wait=wait):
            yield
    else:
        with _file_lock(url, wait=wait):
            yield


def _busy(url: str) -> LockBusy:
    safe = make_url(url).render_as_string(hide_password=True)
    return LockBusy(f"another nightcast cycle is running on {safe}; try later or pass --wait")


@contextmanager
def _advisory_lock(url: str, *, wait: bool) -> Iterator[None]:
    with get_engine(url).connect() as conn:
        if wait:
            conn.execute(sa.text(f"SELECT pg_advisory_lock({_PG_KEY})"))
        elif not conn.execute(sa.text(f"SELECT pg_try_advisory_lock({_PG_KEY})")).scalar():
            raise _busy(url)
        conn.commit()  # the lock is session-level; do not keep a transaction open with it
        try:
            yield
        finally:
            conn.execute(sa.text(f"SELECT pg_advisory_unlock({_PG_KEY})"))
            conn.commit()


@contextmanager
def _file_lock(url: str, *, wait: bool) -> Iterator[None]:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise NightcastError("a SQLite database for cycles must be a file, not in memory")
    lock = filelock.FileLock(f"{database}.lock", timeout=-1 if wait else 0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise _busy(url) from None
    try:
        yield
    finally:
        lock.release()
