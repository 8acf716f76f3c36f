"""Every database test runs twice: on a SQLite file and on the machine's real PostgreSQL.

PostgreSQL tests get a schema of their own (through `search_path` in the URL), dropped
afterwards. If PostgreSQL cannot be reached the whole run stops with a clear message:
these tests never skip silently.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from job.config import Settings
from job.db.engine import get_engine
from job.db.migrate import upgrade_to_head
from job.forecast.params import ModelParams
from tests.scratch import scratch_schema

PG_URL = os.environ.get("NIGHTCAST_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SAMPLE_CSV = Path(__file__).resolve().parents[1] / "job" / "data" / "TSLA.csv"


def pytest_sessionstart(session: pytest.Session) -> None:
    try:
        with sa.create_engine(PG_URL, poolclass=sa.NullPool).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        pytest.exit(
            f"PostgreSQL for the tests is unreachable at {PG_URL} (set NIGHTCAST_TEST_PG_URL): {exc.orig}",
            returncode=1,
        )


#: What the caller's shell may hold that would steer nightcast, its database driver, Dask or
#: compose: a user who has just deployed the service has POSTGRES_PASSWORD and
#: NIGHTCAST_DATABASE_URL exported, libpq reads PG*, Dask reads DASK_*.
CALLER_PREFIXES = ("NIGHTCAST_", "POSTGRES_", "DATABASE_URL", "PG", "DASK_")


def caller_free(environ: dict[str, str]) -> dict[str, str]:
    """`environ` without the caller's settings (the test's own PostgreSQL URL is kept)."""
    return {
        k: v for k, v in environ.items() if not k.startswith(CALLER_PREFIXES) or k == "NIGHTCAST_TEST_PG_URL"
    }


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test, nor any command a test starts with this process's environment, reads the
    caller's settings or a stray .env file: each test sets what it needs."""
    for name in set(os.environ) - set(caller_free(dict(os.environ))):
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _pg_schema_url() -> Iterator[str]:
    with scratch_schema(PG_URL, prefix="t") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'nightcast.db'}"
        yield url
        get_engine(url).dispose()
    else:
        yield from _pg_schema_url()


@pytest.fixture(scope="session")
def _sqlite_at_head(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite database migrated to head per test process, which each test copies."""
    path = tmp_path_factory.mktemp("template") / "head.db"
    url = f"sqlite:///{path}"
    upgrade_to_head(url)
    get_engine(url).dispose()
    return path


def _migrate(url: str, template: Path) -> None:
    """`url` at the newest revision: migrated (PostgreSQL), or a copy of a SQLite database
    the migrations made (what they would make again, in a millisecond instead of 50)."""
    if not url.startswith("sqlite"):
        upgrade_to_head(url)
        return
    with sqlite3.connect(template) as source, sqlite3.connect(sa.make_url(url).database) as target:
        source.backup(target)


@pytest.fixture
def migrated_url(db_url: str, _sqlite_at_head: Path) -> str:
    """A database of each kind at the newest schema revision."""
    _migrate(db_url, _sqlite_at_head)
    return db_url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """PostgreSQL alone, migrated, for behaviour only a server has (passwords, advisory locks)."""
    for url in _pg_schema_url():
        upgrade_to_head(url)
        yield url


@pytest.fixture
def make_db(
    request: pytest.FixtureRequest, tmp_path: Path, db_url: str, _sqlite_at_head: Path
) -> Iterator[Callable[[], str]]:
    """Further migrated databases of the same kind as `db_url`, for side-by-side comparisons."""
    made: list[Iterator[str]] = []

    def make() -> str:
        if db_url.startswith("sqlite"):
            url = f"sqlite:///{tmp_path / f'extra{len(made)}.db'}"
            made.append(iter(()))
        else:
            generator = _pg_schema_url()
            url = next(generator)
            made.append(generator)
        _migrate(url, _sqlite_at_head)
        return url

    yield make
    for generator in made:
        for _ in generator:  # runs the generator's cleanup
            pass


TINY_MODEL = {
    "window": 5,
    "lstm_units": (8, 8),
    "dense_units": 4,
    "batch_size": 64,
    "max_epochs": 3,
    "patience": 2,
    "train_sessions": 200,
    "update_sessions": 40,
    "update_epochs": 1,
    "guard": False,  # so that test forecasts are the network's own, not shrunk onto naive
}


def tiny_model_env() -> dict[str, str]:
    """TINY_MODEL as NIGHTCAST_MODEL__* variables, for commands run in a subprocess or via main()."""
    return {f"NIGHTCAST_MODEL__{key.upper()}": json.dumps(value) for key, value in TINY_MODEL.items()}


@pytest.fixture
def tiny_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The tiny test model and a short history, for commands run through the CLI."""
    env = {**tiny_model_env(), "NIGHTCAST_HISTORY_START": "2019-01-01"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def tiny_settings(url: str, **overrides: object) -> Settings:
    """Settings with a model small enough for tests to train in well under a second."""
    values: dict[str, object] = {
        "database_url": url,
        "source": "sample",
        "tickers": ["TSLA"],
        "history_start": "2019-01-01",
        "model": ModelParams(**TINY_MODEL),
    }
    values.update(overrides)
    return Settings(**values)
