"""Programmatic Alembic: `nightcast migrate` and the schema revision shown by `status`."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import migrations
from job.db.engine import get_engine
from job.errors import NightcastError


def alembic_config(url: str) -> Config:
    """An Alembic config that finds the shipped migrations wherever the package is installed."""
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["url"] = url
    return config


def upgrade_to_head(url: str) -> tuple[str | None, str]:
    """Upgrade the database; returns (revision before, revision after). A no-op at head."""
    before = current_revision(url)
    with get_engine(url).begin() as conn:
        config = alembic_config(url)
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    return before, head_revision(url)


def current_revision(url: str) -> str | None:
    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(url: str) -> str:
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert head is not None, "the migrations folder has no revision"
    return head


def require_current(url: str) -> None:
    """Refuse to work on a database whose schema is not at head, with the fix in the message."""
    try:
        current = current_revision(url)
    except sa.exc.OperationalError as exc:
        raise NightcastError(f"cannot connect to the database: {exc.orig}") from None
    if current != head_revision(url):
        raise NightcastError(
            f"database schema is at revision {current or 'none'}, expected "
            f"{head_revision(url)}: run `nightcast migrate` first"
        )
