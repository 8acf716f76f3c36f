"""The first stage: download -> compare -> write, for many tickers, one failing alone.

What a download changes is `job.ingest.compare`'s; every statement is `job.db`'s. This module is
the loop: which commit holds what, and what each ticker's outcome is.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from job.db import bars, flags
from job.errors import NightcastError, Refused, clip, ticker_failure, unforeseen
from job.ingest.compare import OVERLAP_SESSIONS, IngestResult, Night, Pending, prepare
from job.ingest.revisions import Follow
from job.ingest.sources.base import PriceSource
from job.ingest.tickers import normalize_ticker
from job.support.calendar import Sessions
from job.support.clock import utcnow

log = logging.getLogger(__name__)

#: How far back `ingest_many` reads stored bars in one query: the overlap plus a few missed
#: weeks. A ticker whose last `OVERLAP_SESSIONS` bars are older is read on its own.
RECENT_SPAN = dt.timedelta(days=42)


@dataclass
class IngestOutcome:
    """One ticker of `ingest_many`: a result, or the one-line error that stopped it."""

    ticker: str
    result: IngestResult | None = None
    error: str | None = None
    flagged: bool = False  # the source's bars were refused (kept in `price_flags`)...
    span: tuple[dt.date, dt.date] | None = None  # ...from and to these dates, where known

    @property
    def ok(self) -> bool:
        return self.error is None


def ingest_many(
    conn: sa.Connection,
    tickers: Iterable[str],
    source: PriceSource,
    calendars: Callable[[str], Sessions],
    *,
    history_start: dt.date,
    start: dt.date | None = None,
    end: dt.date | None = None,
    now: dt.datetime | None = None,
    verify: Callable[..., None] | None = None,
    follow: Follow,
    accept: Collection[dt.date] = (),
) -> list[IngestOutcome]:
    """Ingest many tickers; a failing ticker is recorded, the rest go on. Outcomes in input order.

    Each ticker is downloaded and compared on its own, and its large writes (a first load, a
    reload after a revision, with the forecasts and metrics that follow it) commit on their
    own, so a ticker that fails rolls back alone and nothing stored before is lost. No
    transaction is open while a source downloads. The small appends of a night (a few bars
    per ticker) are then written together in one set-based statement: per-ticker commits
    would cost more than everything else in a night. Each ticker's bars still land whole or
    not at all; a database error there stops the command with none of them written, and a
    rerun appends them. `verify`, given the tickers about to be committed, raises if this
    process may no longer write them (job.db.claims). `calendars`: each ticker's exchange
    sessions. `follow`: what a re-based history carries in its transaction
    (job.ingest.revisions.Follow). `accept`: dates
    whose anomalies (job.ingest.anomalies) a person confirmed as real.

    A ticker whose bars are refused (invalid, or flagged as anomalies) keeps a row in
    `price_flags` with the reason until a download of it passes.
    """
    now = now or utcnow()
    check = verify or (lambda *_: None)
    slots: list[IngestOutcome | str] = []  # an outcome, or a ticker still to ingest
    for raw in tickers:
        try:
            name = normalize_ticker(raw)
        except NightcastError as exc:
            slots.append(IngestOutcome(raw, error=clip(str(exc))))
            continue
        if name not in slots:  # once per ticker: "tsla,TSLA" is one ticker
            slots.append(name)
    names = [slot for slot in slots if isinstance(slot, str)]
    recents = bars.last_bars_of(conn, names, now.date() - RECENT_SPAN, OVERLAP_SESSIONS)
    conn.rollback()
    appends: dict[str, tuple[IngestResult, Pending]] = {}

    def ingest_one(ticker: str) -> IngestOutcome:
        night = Night(ticker, source, calendars(ticker), history_start, now, follow, accept)
        with _committed(conn):
            result, pending = prepare(conn, night, start=start, end=end, recent=recents.get(ticker))
            if pending and len(pending.bars) < bars.BULK_THRESHOLD:
                appends[ticker] = (result, pending)
            elif pending or result.revised:
                if pending:
                    batch = pending.bars
                    bars.write_bars(
                        conn, ticker, batch.dates, batch.columns(), source.name, now, fresh=pending.fresh
                    )
                check(ticker)
        return IngestOutcome(ticker, result=result)

    outcomes = {name: _outcome(name, ingest_one, check) for name in names}
    if appends:
        with _committed(conn):
            rows = [
                row
                for _, p in appends.values()
                for row in bars.bar_rows(p.ticker, p.bars.dates, p.bars.columns(), source.name, now)
            ]
            bars.write_rows(conn, rows)
            check(*appends)
    ordered = [outcomes[slot] if isinstance(slot, str) else slot for slot in slots]

    def horizon(ticker: str) -> dt.date:
        return min(end or dt.date.max, calendars(ticker).last_closed_session(now))

    with _committed(conn):
        check(*_record_flags(conn, ordered, source.name, now, horizon))
    return ordered


@contextmanager
def _committed(conn: sa.Connection) -> Iterator[None]:
    """Commit on success, roll back on anything else (a stop request included)."""
    try:
        yield
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def _outcome(ticker: str, step: Callable[[str], IngestOutcome], verify: Callable[..., None]) -> IngestOutcome:
    """Run one ticker's step; its failure becomes that ticker's outcome (job.errors)."""
    try:
        return step(ticker)
    except Refused as exc:
        log.debug("%s", exc)  # the caller reports it; no duplicate line on stderr
        return IngestOutcome(ticker, error=clip(str(exc)), flagged=True, span=exc.span)
    except Exception as exc:
        error = ticker_failure(ticker, exc, verify)
        log.log(logging.ERROR if unforeseen(exc) else logging.DEBUG, "%s", error, exc_info=unforeseen(exc))
        return IngestOutcome(ticker, error=error)


def _record_flags(
    conn: sa.Connection,
    outcomes: list[IngestOutcome],
    source: str,
    now: dt.datetime,
    horizon: Callable[[str], dt.date],
) -> list[str]:
    """Keep `price_flags` in step with this download: a refused ticker in, with the dates
    its refused bars spanned (where unknown, the session its download was to reach,
    `horizon`); out once a download that passes spans them too (not one that skipped or
    stopped short of the refused bars, nor one that fetched nothing). Returns the tickers
    whose flags changed."""
    held = flags.flag_spans(conn, [o.ticker for o in outcomes if o.ok])
    cleared = [
        o.ticker
        for o in outcomes
        if o.ticker in held
        and o.result is not None
        and o.result.fetched is not None
        and o.result.fetched[0] <= held[o.ticker][0]
        and o.result.fetched[1] >= held[o.ticker][1]
    ]
    flags.clear_flags(conn, cleared)
    rows = []
    for o in outcomes:
        if o.flagged:
            first, last = o.span or (horizon(o.ticker),) * 2
            rows.append({"ticker": o.ticker, "detected_at": now, "source": source, "message": o.error,
                         "first_date": first, "last_date": last})  # fmt: skip
    flags.save_flags(conn, rows)
    return [*cleared, *(row["ticker"] for row in rows)]
