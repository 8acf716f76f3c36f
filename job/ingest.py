"""fetch -> validate -> write, per ticker; and detection of history the source re-based.

Writes only what changed: rows whose values equal the stored ones are not sent, so a
re-run leaves `ingested_at` alone and a night's appends of all tickers are one small
statement (`ingest_many`).

Revisions. A split or dividend makes Yahoo rewrite past bars (a 3:1 split divides every
earlier price by 3). Each night the last `OVERLAP_SESSIONS` stored sessions are fetched
again; if their close or adj_close differ beyond `job.revisions.TOLERANCE`, the ticker's
whole history is fetched and compared: one factor that re-bases every stored session is
applied to every stored number in price units, in the same transaction; anything else is
flagged and touches nothing (job.revisions).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from typing import Any

import numpy as np
import sqlalchemy as sa

from job.anomalies import Flagged, find_anomalies
from job.calendar import Sessions
from job.db import price_flags, prices, upsert
from job.db.bars import read_bars, read_bars_around
from job.db.revisions import record_revision, rescale_bars, rescale_forecasts, rescale_validation
from job.errors import ClaimLost, NightcastError, Refused, TickerError, clip
from job.evaluate import update_rolling_metrics
from job.revisions import differs, measure
from job.sources.base import VALUE_COLUMNS, Bars, PriceSource
from job.tickers import normalize_ticker
from job.validate import validate

log = logging.getLogger(__name__)

#: Stored sessions fetched again every night to notice re-based history.
OVERLAP_SESSIONS = 10
#: How far back `ingest_many` reads stored bars in one query: the overlap plus a few missed
#: weeks. A ticker whose last `OVERLAP_SESSIONS` bars are older is read on its own.
RECENT_SPAN = dt.timedelta(days=42)
#: Above this many rows, writes take the bulk path (COPY / executemany) instead of upsert().
BULK_THRESHOLD = 200


@dataclass(frozen=True)
class Revision:
    """A re-based history, as recorded in `price_revisions`."""

    first_revised_date: dt.date
    last_revised_date: dt.date
    factor: float  # new close / old close on the overlap (1/3 after a 3:1 split)
    sessions_changed: int
    source: str
    detected_at: dt.datetime
    predictions_rescaled: int = 0
    kind: str = "rebase"  # or "correction" (job.revisions)


@dataclass
class IngestResult:
    ticker: str
    new_rows: int = 0
    revised: Revision | None = None
    warnings: list[str] = field(default_factory=list)
    last_session: dt.date | None = None
    updated_rows: int = 0  # stored sessions whose values changed without a revision (e.g. volume)
    fetched: tuple[dt.date, dt.date] | None = None  # the dates of the bars that came and passed

    def summary(self) -> str:
        """One line for people: what landed, whether history was re-based, what was repaired."""
        parts = [f"{self.new_rows} new rows"]
        if self.updated_rows:
            parts.append(f"{self.updated_rows} updated")
        if self.revised:
            r = self.revised
            verb = "REVISED" if r.kind == "rebase" else "CORRECTED as accepted"
            parts.append(
                f"{verb} {r.first_revised_date}..{r.last_revised_date} factor {r.factor:.6g} "
                f"({r.sessions_changed} sessions, {r.predictions_rescaled} predictions rescaled)"
            )
        if self.warnings:
            parts.append(f"{len(self.warnings)} warnings (first: {self.warnings[0]})")
        parts.append(f"last session {self.last_session or 'none'}")
        return f"{self.ticker}: " + ", ".join(parts)


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
    metric_windows: list[int],
    accept: Collection[dt.date] = (),
) -> list[IngestOutcome]:
    """Ingest many tickers; a failing ticker is recorded, the rest go on. Outcomes in input order.

    Each ticker is fetched, validated and compared on its own, and its large writes (a first
    load, a reload after a revision) commit on their own, so a ticker that fails rolls back
    alone and nothing stored before is lost. No transaction is open while a source
    downloads. The small appends of a night (a few bars per ticker, already validated and
    compared) are then written together in one set-based statement: per-ticker commits
    would cost more than everything else in a night. Each ticker's bars still land whole or
    not at all; a database error there stops the command with none of them written, and a
    rerun appends them. Stored sessions are read for all tickers in one query. `verify`,
    given the tickers about to be committed, raises if this process may no longer write them
    (job.claims). `calendars`: each ticker's exchange sessions. `metric_windows`: the
    rolling metrics a revision recomputes. `accept`: dates whose anomalies (job.anomalies)
    a person confirmed as real.

    A ticker whose bars are refused (invalid, or flagged as anomalies) keeps a row in
    `price_flags` with the reason until a download of it passes.
    """
    now = now or dt.datetime.now(dt.UTC)
    check = verify or (lambda *_: None)
    names: list[str | None] = []
    slots: list[IngestOutcome | None] = []
    for raw in tickers:
        try:
            name = normalize_ticker(raw)
        except NightcastError as exc:
            names.append(None)
            slots.append(IngestOutcome(raw, error=clip(str(exc))))
            continue
        if name not in names:  # once per ticker: "tsla,TSLA" is one ticker
            names.append(name)
            slots.append(None)
    appends: dict[int, tuple[IngestResult, _Pending]] = {}
    valid = [name for name in names if name is not None]
    recents = _recent_many(conn, valid, now.date() - RECENT_SPAN)
    conn.rollback()

    def ingest_one(position: int, ticker: str) -> IngestResult | None:
        try:
            result, pending = _prepare(
                conn, ticker, source, calendars(ticker), history_start=history_start, start=start, end=end,
                now=now, recent=recents.get(ticker), metric_windows=metric_windows, accept=accept,
            )  # fmt: skip
            if pending and len(pending.bars) < BULK_THRESHOLD:
                appends[position] = (result, pending)
            elif pending or result.revised:
                if pending:
                    write_prices(conn, ticker, pending.bars, source.name, now, fresh=pending.fresh)
                check(ticker)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return None if position in appends else result

    for position, ticker in enumerate(names):
        if ticker is not None:
            slots[position] = _outcome(ticker, partial(ingest_one, position, ticker))
    if appends:
        rows = [row for _, p in appends.values() for row in _records(p.ticker, p.bars, source.name, now)]
        try:
            upsert(conn, prices, rows)
            check(*(p.ticker for _, p in appends.values()))
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
    for position, (result, _) in appends.items():
        slots[position] = IngestOutcome(result.ticker, result=result)
    outcomes = [slot for slot in slots if slot is not None]

    def horizon(ticker: str) -> dt.date:
        return min(end or dt.date.max, calendars(ticker).last_closed_session(now))

    _record_flags(conn, outcomes, source.name, now, check, horizon)
    return outcomes


def _record_flags(
    conn: sa.Connection,
    outcomes: list[IngestOutcome],
    source: str,
    now: dt.datetime,
    check: Callable[..., None],
    horizon: Callable[[str], dt.date],
) -> None:
    """Keep `price_flags` in step with this download: a refused ticker in, with the dates
    its refused bars spanned (where unknown, the session its download was to reach,
    `horizon`); out once a download that passes spans them too (not one that skipped or
    stopped short of the refused bars, nor one that fetched nothing)."""
    flagged = [o for o in outcomes if o.flagged]
    names = [o.ticker for o in outcomes if o.ok]
    try:
        query = sa.select(price_flags.c.ticker, price_flags.c.first_date, price_flags.c.last_date)
        held = (
            {t: (a, b) for t, a, b in conn.execute(query.where(price_flags.c.ticker.in_(names)))}
            if names
            else {}
        )
        cleared = [
            o.ticker
            for o in outcomes
            if o.ticker in held
            and o.result is not None
            and o.result.fetched is not None
            and o.result.fetched[0] <= held[o.ticker][0]
            and o.result.fetched[1] >= held[o.ticker][1]
        ]
        if cleared:
            conn.execute(sa.delete(price_flags).where(price_flags.c.ticker.in_(cleared)))
        rows = []
        for o in flagged:
            first, last = o.span or (horizon(o.ticker),) * 2
            rows.append({"ticker": o.ticker, "detected_at": now, "source": source, "message": o.error,
                         "first_date": first, "last_date": last})  # fmt: skip
        upsert(conn, price_flags, rows)
        check(*cleared, *(o.ticker for o in flagged))
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def _outcome(ticker: str, step: Callable[[], IngestResult | None]) -> IngestOutcome | None:
    """Run one ticker's step; its failure becomes that ticker's outcome. None: deferred."""
    try:
        result = step()
    except ClaimLost:
        raise  # not this ticker's problem: this process may write nothing more
    except Refused as exc:
        log.debug("%s", exc)
        return IngestOutcome(ticker, error=clip(str(exc)), flagged=True, span=exc.span)
    except TickerError as exc:
        log.debug("%s", exc)  # the caller reports it; no duplicate line on stderr
        return IngestOutcome(ticker, error=clip(str(exc)))
    except NightcastError as exc:
        return IngestOutcome(ticker, error=f"{ticker}: {exc}")
    except sa.exc.OperationalError:
        raise  # the database itself is gone: no other ticker can succeed either
    except Exception as exc:  # a bug or an unforeseen source failure must not stop the night
        log.exception("%s: unexpected failure", ticker)
        return IngestOutcome(ticker, error=clip(f"{ticker}: unexpected {type(exc).__name__}: {exc}"))
    return None if result is None else IngestOutcome(ticker, result=result)


# --- steps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pending:
    """Bars of one ticker still to be written."""

    ticker: str
    bars: Bars
    fresh: bool  # the ticker has no stored rows, so nothing can conflict


def _prepare(
    conn: sa.Connection,
    ticker: str,
    source: PriceSource,
    sessions: Sessions,
    *,
    history_start: dt.date,
    start: dt.date | None,
    end: dt.date | None,
    now: dt.datetime,
    metric_windows: list[int],
    recent: Stored | None = None,
    accept: Collection[dt.date] = (),
) -> tuple[IngestResult, _Pending | None]:
    """Fetch, validate and compare; the result as it will be once the pending bars are
    written (None: nothing to write). A re-based history is reloaded here and then, in
    `conn`, uncommitted; nothing else is written. `recent`: the ticker's last stored
    sessions, if the caller read them already. No transaction is open while the source
    downloads (retries and backoff may take a minute).
    """
    last_closed = sessions.last_closed_session(now)
    end = min(end, last_closed) if end else last_closed
    if recent is None:
        recent = _recent(conn, ticker)
        conn.rollback()
    stored_last = max(recent, default=None)
    if start is None:
        start = min(recent, default=history_start)
    result = IngestResult(ticker, last_session=stored_last)
    if start > end:
        return result, None

    batch, origin = _fetch_valid(source, ticker, sessions, start, end, result, closed=last_closed)
    if not len(batch):
        return result, None
    first, last = batch.dates[0], batch.dates[-1]
    if not recent:  # nothing stored at all
        stored: Stored = {}
    elif first >= min(recent):  # the nightly case: one query served both purposes
        stored = {d: values for d, values in recent.items() if first <= d <= last}
    else:
        stored = _stored(conn, ticker, first, last)
    _check_anomalies(conn, ticker, batch, stored, stored_last, accept, origin)
    overlap = _overlap(batch, stored)
    if _is_revised(overlap):
        reloaded = _reload(conn, ticker, source, sessions, overlap, history_start, end, now, result, accept)
        update_rolling_metrics(conn, ticker, metric_windows, since=None)  # predictions were rescaled
        return reloaded, None

    changed = _changed_rows(batch, overlap)
    result.new_rows = sum(1 for d in changed.dates if d not in stored) if stored else len(changed)
    result.updated_rows = len(changed) - result.new_rows
    result.last_session = max(d for d in (stored_last, last) if d is not None)
    result.fetched = (first, last)
    return result, _Pending(ticker, changed, fresh=stored_last is None) if len(changed) else None


def _fetch_valid(
    source: PriceSource,
    ticker: str,
    sessions: Sessions,
    start: dt.date,
    end: dt.date,
    result: IngestResult,
    *,
    closed: dt.date,
) -> tuple[Bars, str | None]:
    """The source's closed bars start..end, validated; and the file they came from, if any.
    A file's rows dated after the last `closed` session are named in a warning: a session
    that has not closed yet is never stored, but a file that holds one is worth a look."""
    if start < sessions.first:
        result.warnings.append(
            f"{ticker} {start}: history before {sessions.first} is not fetched "
            f"(the {sessions.name} calendar starts there)"
        )
        start = sessions.first
    frame = source.fetch(ticker, start, end)
    later = frame.attrs.get("after_end", [])
    if later and end == closed:
        result.warnings.append(
            f"{ticker} {later[0]}: {len(later)} rows dated after the last closed session {closed} "
            "are not stored (a session that has not closed yet)"
        )
    checked = validate(frame, ticker, sessions, origin=frame.attrs.get("origin"))
    result.warnings.extend(checked.warnings)
    # Only closed sessions: a source may hand back a bar past `end` (an in-progress one).
    return checked.bars.take(checked.bars.dates <= end), frame.attrs.get("origin")


def _check_anomalies(
    conn: sa.Connection,
    ticker: str,
    batch: Bars,
    stored: Stored,
    stored_last: dt.date | None,
    accept: Collection[dt.date],
    origin: str | None,
) -> None:
    """Raise `Flagged` for the batch's anomalies, the steps from and to the stored bars
    around it included (a download that starts after a gap joins on the last stored bar).
    Nightly, the batch begins inside the stored overlap and ends past the last stored bar:
    no further query."""
    first, last = batch.dates[0], batch.dates[-1]
    if stored_last is not None and (first not in stored or (last not in stored and last < stored_last)):
        around = read_bars_around(conn, ticker, first, last)
        stored = {**stored, **_as_stored(around)}
        order = np.argsort(np.r_[around.dates, batch.dates].astype("datetime64[D]"), kind="stable")
        batch = Bars(np.r_[around.dates, batch.dates][order], np.vstack([around.values, batch.values])[order])
    anomalies = find_anomalies(batch, stored, accept)
    if anomalies:
        raise Flagged(ticker, anomalies, origin, (anomalies[0].date, last))


Stored = dict[dt.date, tuple[float, ...]]


def _stored(conn: sa.Connection, ticker: str, first: dt.date, last: dt.date | None) -> Stored:
    """Stored bars of `ticker` with first <= date (<= last): date -> values of VALUE_COLUMNS.

    Plain tuples, not a DataFrame: the nightly compare is ~10 rows, where pandas overhead
    would dominate the whole append.
    """
    return _as_stored(read_bars(conn, ticker, first, last or dt.date.max))


def _as_stored(bars: Bars) -> Stored:
    return dict(zip(bars.dates, map(tuple, bars.values.tolist()), strict=True))


def _recent(conn: sa.Connection, ticker: str) -> Stored:
    """The newest `OVERLAP_SESSIONS` stored bars: where a nightly fetch starts, and what it
    is compared with."""
    rows = conn.execute(_RECENT, {"ticker": ticker})
    return {row[0]: tuple(float(v) for v in row[1:]) for row in rows}


def _recent_many(conn: sa.Connection, tickers: Sequence[str], since: dt.date) -> dict[str, Stored]:
    """`_recent` for many tickers in one query, from the bars stored since `since`.

    A ticker with fewer than `OVERLAP_SESSIONS` bars there (new, or not updated for weeks)
    is left out, and `_prepare` reads it alone.
    """
    found: dict[str, Stored] = {}
    if tickers:
        query = sa.select(prices.c.ticker, prices.c.date, *(prices.c[c] for c in VALUE_COLUMNS)).where(
            prices.c.ticker.in_(tickers), prices.c.date >= since
        )
        for ticker, day, *values in conn.execute(query):
            found.setdefault(ticker, {})[day] = tuple(float(v) for v in values)
    return {
        ticker: {day: bars[day] for day in sorted(bars)[-OVERLAP_SESSIONS:]}
        for ticker, bars in found.items()
        if len(bars) >= OVERLAP_SESSIONS
    }


_RECENT = (
    sa.select(prices.c.date, *(prices.c[c] for c in VALUE_COLUMNS))
    .where(prices.c.ticker == sa.bindparam("ticker"))
    .order_by(prices.c.date.desc())
    .limit(OVERLAP_SESSIONS)
)


Overlap = tuple[np.ndarray, np.ndarray, np.ndarray, list[dt.date]]


def _overlap(batch: Bars, stored: Stored) -> Overlap:
    """(positions in batch, new values, old values, dates) of the dates present in both."""
    positions = np.array(
        [i for i, d in enumerate(batch.dates) if d in stored] if stored else [], dtype=np.int64
    )
    common = list(batch.dates[positions])
    old = np.array([stored[d] for d in common], dtype="float64").reshape(len(common), len(VALUE_COLUMNS))
    return positions, batch.values[positions], old, common


_CLOSE, _ADJ = VALUE_COLUMNS.index("close"), VALUE_COLUMNS.index("adj_close")


def _is_revised(overlap: Overlap) -> bool:
    _, new, old, _ = overlap
    cols = [_CLOSE, _ADJ]
    return bool(differs(new[:, cols], old[:, cols]).any())


def _changed_rows(batch: Bars, overlap: Overlap) -> Bars:
    """Rows that are new, or whose values differ from the stored ones (within float noise)."""
    positions, new, old, _ = overlap
    keep = np.ones(len(batch), dtype=bool)
    keep[positions] = differs(new, old, 1e-9).any(axis=1)
    return batch.take(keep)


def _reload(
    conn: sa.Connection,
    ticker: str,
    source: PriceSource,
    sessions: Sessions,
    overlap: Overlap,
    history_start: dt.date,
    end: dt.date,
    now: dt.datetime,
    result: IngestResult,
    accept: Collection[dt.date],
) -> IngestResult:
    """The source changed stored history: fetch all of it and, if one factor re-bases what
    is stored (job.revisions), write it and rescale every stored number in price units;
    else flag it and touch nothing. A stored session the source no longer serves is kept,
    in the new units."""
    _, new, old, common = overlap
    changed_now = [d for d, c in zip(common, differs(new, old).any(axis=1), strict=True) if c]
    span = (min(changed_now), max(common))  # refetched every night: a flag over it clears when it passes
    first_stored = conn.scalar(sa.select(sa.func.min(prices.c.date)).where(prices.c.ticker == ticker))
    conn.rollback()  # no transaction while the source downloads; the claim keeps others away
    first = min(history_start, first_stored)
    full, origin = _fetch_valid(
        source, ticker, sessions, first, end, result, closed=sessions.last_closed_session(now)
    )
    if not len(full):
        raise TickerError(ticker, "history changed at the source but reloading it returned nothing")
    everything_before = _stored(conn, ticker, first_stored, None)
    anomalies = find_anomalies(full, everything_before, accept)
    if anomalies:
        raise Flagged(ticker, anomalies, origin, (anomalies[0].date, full.dates[-1]))
    change = measure(ticker, full, everything_before, accept, origin=origin, span=span)
    if change.unserved:
        result.warnings.append(
            f"{ticker} {change.unserved[0]}: {len(change.unserved)} stored sessions the source no longer "
            "serves are kept" + (f", rescaled by {change.factor:.6g}" if change.factor != 1.0 else "")
        )
    write_prices(conn, ticker, full, source.name, now)
    rescale_bars(conn, ticker, change.unserved, change.factor)
    if change.changed:
        record_revision(
            conn, ticker, kind=change.kind, factor=change.factor, changed=change.changed, source=source.name,
            now=now,
        )  # fmt: skip
    rescaled = rescale_forecasts(conn, ticker, change.factor, change.corrections)
    rescale_validation(conn, ticker, change.factor)
    if change.changed:
        result.revised = Revision(
            first_revised_date=change.changed[0], last_revised_date=change.changed[-1], factor=change.factor,
            sessions_changed=len(change.changed), source=source.name, detected_at=now,
            predictions_rescaled=rescaled, kind=change.kind,
        )  # fmt: skip
    result.new_rows = sum(1 for d in full.dates if d not in everything_before)
    result.updated_rows = len(change.changed)
    result.last_session = max(full.dates[-1], max(everything_before))
    result.fetched = (full.dates[0], full.dates[-1])
    log.warning("%s: source history %s (factor %.6g), reloaded", ticker, change.kind, change.factor)
    return result


# --- writing ----------------------------------------------------------------------------


def write_prices(
    conn: sa.Connection,
    ticker: str,
    bars: Bars,
    source: str,
    now: dt.datetime,
    *,
    fresh: bool = False,
) -> int:
    """Set-based write of bars on (ticker, date).

    Nightly sizes go through `job.db.upsert` (multi-row VALUES ... ON CONFLICT). Large
    batches skip SQLAlchemy's per-value handling, which tops out near 10k rows/s:
    PostgreSQL takes a binary COPY built from the arrays in one go (straight into `prices`
    when `fresh`, i.e. the ticker has no stored rows, else into a temporary table followed
    by INSERT ... SELECT ... ON CONFLICT); SQLite takes one prepared statement and the
    driver's executemany.
    """
    if len(bars) < BULK_THRESHOLD:
        return upsert(conn, prices, _records(ticker, bars, source, now))
    if conn.dialect.name == "postgresql":
        return _copy_postgresql(conn, ticker, bars, source, now, fresh=fresh)
    return _executemany_sqlite(conn, ticker, bars, source, now, fresh=fresh)


def _rows(bars: Bars) -> Iterable[tuple[dt.date, float, float, float, float, float, int]]:
    """(date, open, high, low, close, adj_close, volume) as Python values; volume is a count."""
    volume = np.rint(bars.column("volume")).astype(np.int64).tolist()
    for day, (o, h, lo, c, a, _), v in zip(bars.dates, bars.values.tolist(), volume, strict=True):
        yield day, o, h, lo, c, a, v


def _records(ticker: str, bars: Bars, source: str, now: dt.datetime) -> list[dict[str, Any]]:
    return [
        {"ticker": ticker, "date": day, "open": o, "high": h, "low": lo, "close": c, "adj_close": a,
         "volume": v, "source": source, "ingested_at": now}
        for day, o, h, lo, c, a, v in _rows(bars)
    ]  # fmt: skip


_PRICE_FIELDS = (
    "ticker",
    "date",
    "open",
    "high",
    "low",
    "close",
    "adj_close",
    "volume",
    "source",
    "ingested_at",
)
_COLUMN_LIST = ", ".join(_PRICE_FIELDS)
_ON_CONFLICT = "ON CONFLICT (ticker, date) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in _PRICE_FIELDS[2:]
)


def _bind(conn: sa.Connection, column: str) -> Any:
    """The dialect's own conversion of a Python value for `column` (identity if none)."""
    impl = prices.c[column].type.dialect_impl(conn.dialect)
    return impl.bind_processor(conn.dialect) or (lambda value: value)


def _executemany_sqlite(
    conn: sa.Connection, ticker: str, bars: Bars, source: str, now: dt.datetime, *, fresh: bool
) -> int:
    placeholders = ", ".join("?" for _ in _PRICE_FIELDS)
    sql = f"INSERT INTO prices ({_COLUMN_LIST}) VALUES ({placeholders})" + (
        "" if fresh else f" {_ON_CONFLICT}"
    )
    # Whole columns at once (zip and tolist run in C). Dates as ISO text and the stamp as
    # SQLAlchemy's own rendering: what the row upsert stores on SQLite.
    n = len(bars)
    columns = [bars.values[:, i].tolist() for i in range(len(VALUE_COLUMNS) - 1)]
    volume = np.rint(bars.column("volume")).astype(np.int64).tolist()
    stamp = _bind(conn, "ingested_at")(now)
    days = map(dt.date.isoformat, bars.dates)
    conn.exec_driver_sql(
        sql,
        list(
            zip(repeat(ticker, n), days, *columns, volume, repeat(source, n), repeat(stamp, n), strict=True)
        ),
    )
    return n


_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_PG_EPOCH_DAY = _PG_EPOCH.date().toordinal()
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)


def _copy_binary(ticker: str, bars: Bars, source: str, now: dt.datetime) -> bytes:
    """The bars in PostgreSQL's binary COPY format, built by numpy for all rows at once.

    Every field of a row has a fixed width within one batch (ticker and source are the same
    on every row), so a row is one record of a packed big-endian numpy dtype: the field
    count, then (byte length, value) per column in `_PRICE_FIELDS` order. Dates count days
    and timestamps microseconds from 2000-01-01, as the format defines.
    """
    name, origin = ticker.encode(), source.encode()
    kinds = {"ticker": f"S{len(name)}", "date": ">i4", "volume": ">i8", "source": f"S{len(origin)}",
             "ingested_at": ">i8"}  # fmt: skip
    layout = np.dtype(
        [("fields", ">i2")]
        + [
            part
            for column in _PRICE_FIELDS
            for part in ((f"{column}_n", ">i4"), (column, kinds.get(column, ">f8")))
        ]
    )
    rows = np.empty(len(bars), dtype=layout)
    rows["fields"] = len(_PRICE_FIELDS)
    for column in _PRICE_FIELDS:
        rows[f"{column}_n"] = layout.fields[column][0].itemsize
    rows["ticker"], rows["source"] = name, origin
    rows["date"] = np.fromiter(map(dt.date.toordinal, bars.dates), np.int64, len(bars)) - _PG_EPOCH_DAY
    for column in VALUE_COLUMNS:
        rows[column] = bars.column(column)
    rows["volume"] = np.rint(bars.column("volume"))  # a count, like the other write paths
    rows["ingested_at"] = (now - _PG_EPOCH) // dt.timedelta(microseconds=1)
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


def _copy_postgresql(
    conn: sa.Connection, ticker: str, bars: Bars, source: str, now: dt.datetime, *, fresh: bool
) -> int:
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
    with cursor.copy(f"COPY {target} ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(_copy_binary(ticker, bars, source, now))
    if not fresh:
        conn.exec_driver_sql(
            f"INSERT INTO prices ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM _prices_load {_ON_CONFLICT}"
        )
        conn.exec_driver_sql("TRUNCATE _prices_load")
    return len(bars)
