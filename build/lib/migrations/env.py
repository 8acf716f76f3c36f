"""Alembic environment: the URL comes from nightcast's settings unless a caller passes a connection."""

from alembic import context
from sqlalchemy import Connection

from job.config import load_settings
from job.db.engine import get_engine
from job.db.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # `nightcast migrate` passes its URL; the plain `alembic` command reads the settings.
    url = config.attributes.get("url") or load_settings().database_url
    with get_engine(url).connect() as connection:
        _run(connection)


if context.is_offline_mode():
    raise SystemExit("nightcast migrations run online only: give a database URL")
run_migrations_online()
