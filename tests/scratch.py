"""Throw-away PostgreSQL schemas, so tests and benchmarks share one server without colliding."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from job.db.engine import get_engine


@contextmanager
def scratch_schema(server_url: str, prefix: str = "scratch") -> Iterator[str]:
    """Create an empty schema and yield a URL whose connections use it; drop it afterwards.

    The schema is selected through `search_path` in the URL, so every connection made from
    it (migrations, advisory locks, subprocesses given the URL) lands in the schema.
    """
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, poolclass=sa.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{server_url}?options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        get_engine(url).dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
