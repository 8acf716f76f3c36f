"""Ingest throughput: a cold bulk load and one nightly append, on SQLite and PostgreSQL.

    python bench/ingest.py                      # 500 tickers x 5000 sessions
    python bench/ingest.py --tickers 50 --sessions 1000 --only sqlite

Prices are synthetic random walks on real XNYS sessions, served by an in-memory source
whose frames are already in normal form, so the figures are ingest itself (validate,
compare with what is stored, write), not a network or a parser. Targets: >= 100,000
rows/s cold load; the nightly append of one session for all tickers under 1 s.
PostgreSQL: a temporary schema in NIGHTCAST_BENCH_PG_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test), dropped afterwards.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from job.db import get_engine, prices, upsert
from job.db.migrate import upgrade_to_head
from job.ingest.run import ingest_many
from job.ingest.sources.base import finish
from job.persist.steps import revision_follower
from job.support.calendar import Calendars, get_sessions

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' scratch schemas
from tests.scratch import scratch_schema

PG_URL = os.environ.get("NIGHTCAST_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
LAST = dt.date(2020, 7, 31)


class SyntheticSource:
    """Random-walk daily bars for any ticker, fixed per ticker, up to `last` (inclusive)."""

    name = "bench"

    def __init__(self, days: list[dt.date]) -> None:
        self.days = days
        self.frames: dict[str, pd.DataFrame] = {}

    def _frame(self, ticker: str) -> pd.DataFrame:
        if ticker not in self.frames:
            rng = np.random.default_rng(abs(hash(ticker)) % 2**32)
            close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, len(self.days))))
            open_ = close * np.exp(rng.normal(0, 0.01, len(self.days)))
            self.frames[ticker] = pd.DataFrame(
                {
                    "date": self.days,
                    "open": open_,
                    "high": np.maximum(open_, close) * 1.01,
                    "low": np.minimum(open_, close) * 0.99,
                    "close": close,
                    "adj_close": close,
                    "volume": rng.integers(1_000, 10_000_000, len(self.days)).astype("float64"),
                }
            )
        return self.frames[ticker]

    def fetch(self, ticker: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        # Slice first, like a server answering only the range asked for.
        lo, hi = bisect.bisect_left(self.days, start), bisect.bisect_right(self.days, end)
        return finish(self._frame(ticker).iloc[lo:hi], start, end)


@contextmanager
def database(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{Path(folder) / 'bench.db'}"
            try:
                yield url
            finally:
                get_engine(url).dispose()
        return
    with scratch_schema(PG_URL, prefix="bench") as url:
        yield url


def bench(kind: str, n_tickers: int, n_sessions: int) -> None:
    sessions = get_sessions("XNYS")
    days = sessions.sessions_in_range(dt.date(1990, 1, 1), LAST)[-(n_sessions + 1) :]
    cold_end, night = days[-2], days[-1]
    tickers = [f"T{i:04d}" for i in range(n_tickers)]
    source = SyntheticSource(days)
    for t in tickers:  # generate up front: the figures are ingest, not numpy
        source._frame(t)
    now = sessions.session_close(night) + dt.timedelta(hours=2)
    with database(kind) as url:
        upgrade_to_head(url)
        options = {"history_start": days[0], "now": now, "follow": revision_follower([5, 20, 60])}
        began = time.perf_counter()
        with get_engine(url).connect() as conn:
            outcomes = ingest_many(conn, tickers, source, Calendars("XNYS"), end=cold_end, **options)
        cold = time.perf_counter() - began
        assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok][:3]
        rows = sum(o.result.new_rows for o in outcomes if o.result)
        print(f"{kind:10} cold load     {rows:>10,} rows in {cold:7.2f} s = {rows / cold:>10,.0f} rows/s")

        began = time.perf_counter()
        with get_engine(url).connect() as conn:
            outcomes = ingest_many(conn, tickers, source, Calendars("XNYS"), **options)
        append = time.perf_counter() - began
        new = sum(o.result.new_rows for o in outcomes if o.result)
        assert new == n_tickers and all(o.ok for o in outcomes)
        print(
            f"{kind:10} nightly append {new:>9,} rows in {append:7.3f} s "
            f"({append / n_tickers * 1000:.2f} ms per ticker; each fetched, validated, compared; one write)"
        )
        with get_engine(url).connect() as conn:
            total = conn.scalar(sa.select(sa.func.count()).select_from(prices))
        assert total == n_tickers * (n_sessions + 1), total

        # For scale: the database part alone, one session for every ticker in one statement.
        rows = [
            {"ticker": t, "date": night, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5,
             "adj_close": 1.5, "volume": 10, "source": "bench", "ingested_at": now}
            for t in tickers
        ]  # fmt: skip
        began = time.perf_counter()
        with get_engine(url).begin() as conn:
            upsert(conn, prices, rows)
        single = time.perf_counter() - began
        print(f"{kind:10} set-based upsert of {len(rows)} rows in one transaction: {single:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickers", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    print(f"{args.tickers} tickers x {args.sessions} sessions")
    for kind in ("sqlite", "postgresql"):
        if args.only in (None, kind):
            bench(kind, args.tickers, args.sessions)


if __name__ == "__main__":
    main()
