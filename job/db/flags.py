"""What is known to be wrong or rewritten in a ticker's prices: `price_flags` (refused
downloads, until one passes) and `price_revisions` (history the source rewrote)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from job.db.schema import price_flags, price_revisions
from job.db.upsert import upsert


def flag_spans(conn: sa.Connection, tickers: Sequence[str]) -> dict[str, tuple[dt.date, dt.date]]:
    """The first and last date of the refused bars, per flagged ticker among `tickers`."""
    if not tickers:
        return {}
    query = sa.select(price_flags.c.ticker, price_flags.c.first_date, price_flags.c.last_date)
    return {t: (a, b) for t, a, b in conn.execute(query.where(price_flags.c.ticker.in_(tickers)))}


def flag_messages(conn: sa.Connection) -> dict[str, str]:
    """Every flagged ticker and why, by ticker."""
    query = sa.select(price_flags.c.ticker, price_flags.c.message).order_by(price_flags.c.ticker)
    return {ticker: message for ticker, message in conn.execute(query)}


def save_flags(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> int:
    return upsert(conn, price_flags, rows)


def clear_flags(conn: sa.Connection, tickers: Sequence[str]) -> None:
    if tickers:
        conn.execute(sa.delete(price_flags).where(price_flags.c.ticker.in_(tickers)))


def record_revision(
    conn: sa.Connection,
    ticker: str,
    *,
    kind: str,
    factor: float,
    changed: Sequence[dt.date],
    source: str,
    now: dt.datetime,
) -> None:
    conn.execute(
        sa.insert(price_revisions).values(
            ticker=ticker, kind=kind, factor=factor, detected_at=now, first_revised_date=min(changed),
            last_revised_date=max(changed), sessions_changed=len(changed), source=source,
        )
    )  # fmt: skip


def revisions_since(conn: sa.Connection, ticker: str, since: dt.datetime) -> list[tuple[str, float]]:
    """(kind, factor) of the ticker's revisions detected after `since`."""
    query = sa.select(price_revisions.c.kind, price_revisions.c.factor).where(
        price_revisions.c.ticker == ticker, price_revisions.c.detected_at > since
    )
    return [(kind, factor) for kind, factor in conn.execute(query)]
