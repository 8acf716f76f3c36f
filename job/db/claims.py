"""Which cycle works which ticker: per-ticker claims that a lost connection cannot outlive.

PostgreSQL: one session-level advisory lock per ticker, keyed by schema and ticker, all held
on the one connection that also carries every write of the cycle. Two cycles on one
database can so work different tickers at once, never the same one. Before each commit
`verify` asks the server, on that same connection, whether this session still holds the
ticker's lock: if the session ended (the connection died, an administrator terminated it,
SQLAlchemy reconnected behind our back), it does not, and the work stops as failed. A
terminated session cannot commit either, so no write ever lands without its claim.

SQLite has one writer per database: an OS file lock beside the file, for all tickers at once.

Both kinds of lock are released by the server or the operating system when the holder
dies, so a killed cycle never leaves a stale claim behind. Each running `job_runs` row is
claimed the same way, which is how a cycle tells a live run from one whose process died.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType

import filelock
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from job.db.engine import get_engine
from job.errors import ClaimLost, NightcastError

# Two int4 keys: the schema, then the ticker (or run). pg_locks shows them as classid/objid.
_KEYS = "hashtext(current_schema()), hashtext(:name)"
_HELD = sa.text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND pid = pg_backend_pid() AND objsubid = 2 "
    "AND classid = hashtext(current_schema())::oid AND objid = hashtext(:name)::oid)"
)


class Claims:
    """The claims of one cycle and the connection its writes go through.

    Use as a context manager: `conn` is open inside; every claim is released on exit.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = make_url(url).get_backend_name() == "postgresql"
        self.conn: sa.Connection
        self.held: set[str] = set()
        self._file: filelock.BaseFileLock | None = None
        if not self.postgres:
            database = make_url(url).database
            if not database or database == ":memory:":
                raise NightcastError("a SQLite database for cycles must be a file, not in memory")
            self._file = filelock.FileLock(f"{database}.lock")

    def __enter__(self) -> Claims:
        self.conn = get_engine(self.url).connect()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self.postgres and not self.conn.invalidated:
                self.conn.rollback()
                self.conn.execute(sa.text("SELECT pg_advisory_unlock_all()"))
                self.conn.commit()
        except sa.exc.DBAPIError:
            pass  # the session is gone, and its locks with it
        finally:
            self.conn.close()
            if self._file is not None and self._file.is_locked:
                self._file.release(force=True)
            self.held.clear()

    def take(self, names: Iterable[str], *, wait: bool) -> list[str]:
        """Claim what is free among `names` (all of them, waiting for each, with `wait`);
        returns what was claimed, in order. SQLite: all or nothing."""
        names = [n for n in names if n not in self.held]
        if self._file is not None:
            try:
                self._file.acquire(timeout=-1 if wait else 0)
            except filelock.Timeout:
                return []
            self.held.update(names)
            return names
        claimed = []
        for name in names:
            if wait:
                self.conn.execute(sa.text(f"SELECT pg_advisory_lock({_KEYS})"), {"name": name})
            elif not self.conn.execute(
                sa.text(f"SELECT pg_try_advisory_lock({_KEYS})"), {"name": name}
            ).scalar_one():
                continue
            claimed.append(name)
            self.held.add(name)
        self.conn.commit()  # session-level locks: no transaction stays open with them
        return claimed

    def release(self, name: str) -> None:
        if name in self.held and self.postgres:
            self.conn.execute(sa.text(f"SELECT pg_advisory_unlock({_KEYS})"), {"name": name})
            self.conn.commit()
        self.held.discard(name)

    def verify(self, *names: str) -> None:
        """Raise ClaimLost unless this session still holds every claim in `names`; called
        inside the transaction about to commit, on the connection that will commit it."""
        for name in names:
            lost = name not in self.held
            if not lost and self.postgres:
                try:
                    lost = not self.conn.execute(_HELD, {"name": name}).scalar_one()
                except sa.exc.SQLAlchemyError as exc:  # the server ended the session, or it is invalid
                    reason = exc.orig if isinstance(exc, sa.exc.DBAPIError) else type(exc).__name__
                    raise ClaimLost(f"{name}: the connection holding its claim was lost ({reason})") from None
            if lost:
                raise ClaimLost(f"{name}: this cycle no longer holds its claim (the database session ended)")

    def is_free(self, name: str) -> bool:
        """Whether no live session holds `name` (PostgreSQL); the probe leaves it unclaimed."""
        if self._file is not None:
            return self._file.is_locked  # one writer: if it is us, whoever held it before is gone
        params = {"name": name}
        free = self.conn.execute(sa.text(f"SELECT pg_try_advisory_lock({_KEYS})"), params).scalar_one()
        if free:
            self.conn.execute(sa.text(f"SELECT pg_advisory_unlock({_KEYS})"), params)
        self.conn.commit()
        return bool(free)

    def held_elsewhere(self, name: str) -> bool:
        """Whether another live process holds `name` (SQLite: any cycle on the database);
        a probe that leaves nothing claimed."""
        if self._file is None:
            return not self.is_free(name)
        if self._file.is_locked:
            return False
        try:
            self._file.acquire(timeout=0)
        except filelock.Timeout:
            return True
        self._file.release(force=True)
        return False
