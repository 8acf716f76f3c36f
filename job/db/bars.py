"""Stored bars in `prices`: reads as arrays, and the one write path (bulk or set-based).

Bars travel as (dates, {column: array}) with the value columns of `BAR_VALUES`: ingest
compares with them, the compute stage learns from them, the report draws them, all
through here, so every reader sees the same rows in the same order and types.

Writes go by size: a night's few bars of many tickers as one multi-row upsert; a first
load or a reload skips SQLAlchemy's per-value handling, which dominates at thousands of
rows: PostgreSQL takes a binary COPY through psycopg (straight into
`prices` when `fresh`, i.e. the ticker has no stored rows, else into a temporary table
followed by INSERT ... SELECT ... ON CONFLICT); SQLite one prepared statement and the
driver's executemany.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from itertools import repeat
from typing import Any

import numpy as np
import sqlalchemy as sa

from job.db.schema import BAR_VALUES, STORED_PRICES, prices
from job.db.upsert import upsert

#: Above this many rows, writes take the bulk path (COPY / executemany) instead of upsert().
BULK_THRESHOLD = 200

Columns = Mapping[str, np.ndarray]
Stored = dict[dt.date, tuple[float, ...]]  # date -> values in BAR_VALUES order

_VALUES = tuple(prices.c[c] for c in BAR_VALUES)
_BARS = (
    sa.select(prices.c.date, *_VALUES)
    .where(
        prices.c.ticker == sa.bindparam("ticker"),
        prices.c.date >= sa.bindparam("first"),
        prices.c.date <= sa.bindparam("last"),
    )
    .order_by(prices.c.date)
)
_BY_DATE = sa.select(prices.c.date, *_VALUES).where(prices.c.ticker == sa.bindparam("ticker"))
_LAST = _BY_DATE.order_by(prices.c.date.desc()).limit(sa.bindparam("count", type_=sa.Integer))


def read_bars(
    conn: sa.Connection, ticker: str, first: dt.date = dt.date.min, last: dt.date = dt.date.max
) -> tuple[np.ndarray, Columns]:
    """The ticker's stored bars with first <= date <= last, oldest first."""
    return _arrays(conn.execute(_BARS, {"ticker": ticker, "first": first, "last": last}).all())


def read_around(
    conn: sa.Connection, ticker: str, first: dt.date, last: dt.date
) -> tuple[np.ndarray, Columns]:
    """The stored bar just before `first` and the one just after `last` (those that exist):
    what a batch of new bars joins on to."""
    before = _BY_DATE.where(prices.c.date < first).order_by(prices.c.date.desc()).limit(1)
    after = _BY_DATE.where(prices.c.date > last).order_by(prices.c.date).limit(1)
    return _arrays([row for query in (before, after) for row in conn.execute(query, {"ticker": ticker})])


def _arrays(rows: Sequence[sa.Row[Any]]) -> tuple[np.ndarray, Columns]:
    dates = np.array([row[0] for row in rows], dtype=object)
    values = np.array([row[1:] for row in rows], dtype=np.float64).reshape(len(rows), len(BAR_VALUES))
    return dates, {column: values[:, i] for i, column in enumerate(BAR_VALUES)}


def stored(
    conn: sa.Connection, ticker: str, first: dt.date = dt.date.min, last: dt.date = dt.date.max
) -> Stored:
    """`read_bars` as date -> values: what a download is compared with, a dozen rows a night."""
    rows = conn.execute(_BARS, {"ticker": ticker, "first": first, "last": last})
    return {row[0]: tuple(float(v) for v in row[1:]) for row in rows}


def last_bars(conn: sa.Connection, ticker: str, count: int) -> Stored:
    """The ticker's newest `count` stored bars."""
    rows = conn.execute(_LAST, {"ticker": ticker, "count": count})
    return {row[0]: tuple(float(v) for v in row[1:]) for row in rows}


def last_bars_of(
    conn: sa.Connection, tickers: Sequence[str], since: dt.date, count: int
) -> dict[str, Stored]:
    """`last_bars` for many tickers in one query, from the bars stored since `since`; a ticker
    with fewer than `count` of them there (new, or not updated for weeks) is left out."""
    found: dict[str, Stored] = {}
    if tickers:
        query = sa.select(prices.c.ticker, prices.c.date, *_VALUES).where(
            prices.c.ticker.in_(tickers), prices.c.date >= since
        )
        for ticker, day, *values in conn.execute(query):
            found.setdefault(ticker, {})[day] = tuple(float(v) for v in values)
    return {
        ticker: {day: bars[day] for day in sorted(bars)[-count:]}
        for ticker, bars in found.items()
        if len(bars) >= count
    }


def first_date(conn: sa.Connection, ticker: str) -> dt.date | None:
    return conn.scalar(sa.select(sa.func.min(prices.c.date)).where(prices.c.ticker == ticker))


def rescale_bars(conn: sa.Connection, ticker: str, dates: Sequence[dt.date], factor: float) -> int:
    """Multiply the prices (not the volume) of these stored sessions by `factor`."""
    if not dates or factor == 1.0:
        return 0
    statement = (
        sa.update(prices)
        .where(prices.c.ticker == ticker, prices.c.date == sa.bindparam("day"))
        .values({c: prices.c[c] * factor for c in STORED_PRICES})
    )
    conn.execute(statement, [{"day": day} for day in dates])
    return len(dates)


# --- writing ----------------------------------------------------------------------------


def bar_rows(
    ticker: str, dates: np.ndarray, columns: Columns, source: str, now: dt.datetime
) -> list[dict[str, Any]]:
    """`prices` rows of the bars, for `write_rows`; the volume as a count."""
    values = [columns[c].tolist() for c in BAR_VALUES[:-1]]
    volume = np.rint(columns["volume"]).astype(np.int64).tolist()
    return [
        {"ticker": ticker, "date": day, **dict(zip(BAR_VALUES[:-1], numbers, strict=True)), "volume": v,
         "source": source, "ingested_at": now}
        for day, *numbers, v in zip(dates, *values, volume, strict=True)
    ]  # fmt: skip


def write_rows(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> int:
    """`bar_rows` of any tickers in one set-based upsert."""
    return upsert(conn, prices, rows)


def write_bars(
    conn: sa.Connection,
    ticker: str,
    dates: np.ndarray,
    columns: Columns,
    source: str,
    now: dt.datetime,
    *,
    fresh: bool = False,
) -> int:
    """Set-based write of one ticker's bars on (ticker, date), by the path their size suits."""
    if len(dates) < BULK_THRESHOLD:
        return write_rows(conn, bar_rows(ticker, dates, columns, source, now))
    if conn.dialect.name == "postgresql":
        return _copy_postgresql(conn, ticker, dates, columns, source, now, fresh=fresh)
    return _executemany_sqlite(conn, ticker, dates, columns, source, now, fresh=fresh)


_FIELDS = ("ticker", "date", *BAR_VALUES, "source", "ingested_at")
_FIELD_LIST = ", ".join(_FIELDS)
_ON_CONFLICT = "ON CONFLICT (ticker, date) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in _FIELDS[2:]
)


def _bind(conn: sa.Connection, column: str) -> Any:
    """The dialect's own conversion of a Python value for `column` (identity if none)."""
    impl = prices.c[column].type.dialect_impl(conn.dialect)
    return impl.bind_processor(conn.dialect) or (lambda value: value)


def _executemany_sqlite(
    conn: sa.Connection, ticker: str, dates: np.ndarray, columns: Columns, source: str, now: dt.datetime,
    *, fresh: bool,
) -> int:  # fmt: skip
    placeholders = ", ".join("?" for _ in _FIELDS)
    sql = f"INSERT INTO prices ({_FIELD_LIST}) VALUES ({placeholders})" + (
        "" if fresh else f" {_ON_CONFLICT}"
    )
    # Dates as ISO text and the stamp as SQLAlchemy's own rendering: what the row upsert
    # stores on SQLite.
    days = list(map(dt.date.isoformat, dates))
    conn.exec_driver_sql(
        sql, list(_field_rows(ticker, days, columns, source, _bind(conn, "ingested_at")(now)))
    )
    return len(dates)


def _field_rows(
    ticker: str, days: Sequence[Any], columns: Columns, source: str, stamp: Any
) -> Iterator[tuple[Any, ...]]:
    """The bars as rows of `_FIELDS`, built a whole column at a time (zip and tolist run in C)."""
    n = len(days)
    values = [columns[c].tolist() for c in STORED_PRICES]
    volume = np.rint(columns["volume"]).astype(np.int64).tolist()  # a count, on every write path
    return zip(repeat(ticker, n), days, *values, volume, repeat(source, n), repeat(stamp, n), strict=True)


#: The fields' PostgreSQL types, for psycopg's binary COPY (`Copy.set_types`).
_COPY_TYPES = ("text", "date", *("float8" for _ in STORED_PRICES), "int8", "text", "timestamptz")


def _copy_postgresql(
    conn: sa.Connection, ticker: str, dates: np.ndarray, columns: Columns, source: str, now: dt.datetime,
    *, fresh: bool,
) -> int:  # fmt: skip
    if not conn.in_transaction():  # the COPY goes around SQLAlchemy, which must still commit it
        conn.begin()
    target = "prices"
    if not fresh:
        conn.exec_driver_sql(
            "CREATE TEMPORARY TABLE IF NOT EXISTS _prices_load "
            "(LIKE prices INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        conn.exec_driver_sql("TRUNCATE _prices_load")
        target = "_prices_load"
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {target} ({_FIELD_LIST}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_COPY_TYPES)
        for row in _field_rows(ticker, dates, columns, source, now):
            copy.write_row(row)
    if not fresh:
        conn.exec_driver_sql(
            f"INSERT INTO prices ({_FIELD_LIST}) SELECT {_FIELD_LIST} FROM _prices_load {_ON_CONFLICT}"
        )
        conn.exec_driver_sql("TRUNCATE _prices_load")
    return len(dates)
