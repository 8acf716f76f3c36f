"""Programmatic Alembic: `nightcast migrate` and the schema revision shown by `status`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import migrations
from job.db.engine import get_engine, sqlite_file
from job.errors import NightcastError


def alembic_config(url: str) -> Config:
    """An Alembic config that finds the shipped migrations wherever the package is installed."""
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["url"] = url
    return config


def upgrade_to_head(url: str) -> tuple[str | None, str]:
    """Upgrade the database; returns (revision before, revision after). A no-op at head.

    Two migrations at once (two containers starting) take turns: the second finds the
    first's work done. A database at a revision this nightcast does not know is refused."""
    with _one_at_a_time(url), get_engine(url).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(current_schema()), hashtext(:name))"),
                         {"name": "nightcast/migrate"})  # fmt: skip
        before = MigrationContext.configure(conn).get_current_revision()
        _known(url, before)
        config = alembic_config(url)
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    return before, head_revision(url)


@contextmanager
def _one_at_a_time(url: str) -> Iterator[None]:
    """SQLite has no advisory locks: a lock file beside the database (none in memory)."""
    database = sqlite_file(url)
    if database is None:
        yield
        return
    with filelock.FileLock(f"{database}.migrate.lock"):
        yield


def current_revision(url: str) -> str | None:
    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(url: str) -> str:
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert head is not None, "the migrations folder has no revision"
    return head


def unknown_revision(url: str, revision: str | None) -> str | None:
    """Why `revision` is not one of this nightcast's, or None when it is."""
    known = {script.revision for script in ScriptDirectory.from_config(alembic_config(url)).walk_revisions()}
    if revision is None or revision in known:
        return None
    return (
        f"database schema is at revision {revision}, which this nightcast does not know: a newer "
        "nightcast migrated it; upgrade nightcast to use it"
    )


def _known(url: str, revision: str | None) -> None:
    problem = unknown_revision(url, revision)
    if problem:
        raise NightcastError(problem)


def require_existing(url: str) -> None:
    """Refuse a SQLite file that does not exist, rather than create an empty one: a typo'd
    path must not look like a database with nothing in it (PostgreSQL never creates one)."""
    path = sqlite_file(url)
    if path is not None and not Path(path).exists():
        raise NightcastError(
            f"database {path} does not exist: run `nightcast migrate` first to create it, "
            "or check --database-url / NIGHTCAST_DATABASE_URL"
        )


def require_current(url: str) -> None:
    """Refuse to work on a database whose schema is not at head, with the fix in the message."""
    require_existing(url)
    try:
        current = current_revision(url)
    except sa.exc.OperationalError as exc:
        raise NightcastError(f"cannot connect to the database: {exc.orig}") from None
    _known(url, current)
    if current != head_revision(url):
        raise NightcastError(
            f"database schema is at revision {current or 'none'}, expected "
            f"{head_revision(url)}: run `nightcast migrate` first"
        )
