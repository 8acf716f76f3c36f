"""What one ticker's download changes: new bars, corrected ones, or a rewritten history.

Each night the last `OVERLAP_SESSIONS` stored sessions are fetched again with the new
ones. A download is checked for anomalies (job.ingest.anomalies) against the stored bars around
it; then only rows that are new or differ from the stored ones are kept for writing, so a
re-run leaves `ingested_at` alone and a night's appends of all tickers are one small
statement. Where the overlap's close or adj_close differ beyond `job.ingest.revisions.TOLERANCE`,
the source rewrote history: job.ingest.revisions decides whether one factor re-bases it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa

from job.db import bars, flags
from job.db.bars import Stored
from job.errors import TickerError
from job.ingest import revisions
from job.ingest.anomalies import Flagged, find_anomalies
from job.ingest.download import download
from job.ingest.sources.base import VALUE_COLUMNS, Bars, PriceSource
from job.support.calendar import Sessions

log = logging.getLogger(__name__)

#: Stored sessions fetched again every night to notice re-based history.
OVERLAP_SESSIONS = 10


@dataclass(frozen=True)
class Revision:
    """A rewritten history, as recorded in `price_revisions`."""

    first_revised_date: dt.date
    last_revised_date: dt.date
    factor: float  # new close / old close on the overlap (1/3 after a 3:1 split)
    sessions_changed: int
    source: str
    detected_at: dt.datetime
    predictions_rescaled: int = 0
    kind: str = "rebase"  # or "correction" (job.ingest.revisions)


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


@dataclass(frozen=True)
class Pending:
    """Bars of one ticker still to be written."""

    ticker: str
    bars: Bars
    fresh: bool  # the ticker has no stored rows, so nothing can conflict


@dataclass(frozen=True)
class Night:
    """What a download asks of the tables, and for what."""

    ticker: str
    source: PriceSource
    calendar: Sessions
    history_start: dt.date
    now: dt.datetime
    follow: revisions.Follow
    accept: Collection[dt.date] = ()


def prepare(
    conn: sa.Connection,
    night: Night,
    *,
    start: dt.date | None,
    end: dt.date | None,
    recent: Stored | None = None,
) -> tuple[IngestResult, Pending | None]:
    """Fetch, validate and compare; the result as it will be once the pending bars are
    written (None: nothing to write). A rewritten history is reloaded here and then, in
    `conn`, uncommitted; nothing else is written. `recent`: the ticker's last stored
    sessions, if the caller read them already."""
    ticker = night.ticker
    last_closed = night.calendar.last_closed_session(night.now)
    end = min(end, last_closed) if end else last_closed
    if recent is None:
        recent = bars.last_bars(conn, ticker, OVERLAP_SESSIONS)
        conn.rollback()
    stored_last = max(recent, default=None)
    if start is None:
        start = min(recent, default=night.history_start)
    result = IngestResult(ticker, last_session=stored_last)
    if start > end:
        return result, None

    batch, origin = download(
        night.source, ticker, night.calendar, start, end, result.warnings, closed=last_closed
    )
    if not len(batch):
        return result, None
    first, last = batch.dates[0], batch.dates[-1]
    if not recent:  # nothing stored at all
        stored: Stored = {}
    elif first >= min(recent):  # the nightly case: one query served both purposes
        stored = {d: values for d, values in recent.items() if first <= d <= last}
    else:
        stored = bars.stored(conn, ticker, first, last)
    _check_anomalies(conn, ticker, batch, stored, stored_last, night.accept, origin)
    overlap = _overlap(batch, stored)
    if _is_revised(overlap):
        _, new, old, common = overlap
        changed = [d for d, c in zip(common, revisions.differs(new, old).any(axis=1), strict=True) if c]
        # Refetched every night: a flag over these dates clears when a download of them passes.
        span = (min(changed), max(common))
        return _reload(conn, night, end, span, result), None

    changed_rows = _changed_rows(batch, overlap)
    result.new_rows = sum(1 for d in changed_rows.dates if d not in stored) if stored else len(changed_rows)
    result.updated_rows = len(changed_rows) - result.new_rows
    result.last_session = max(d for d in (stored_last, last) if d is not None)
    result.fetched = (first, last)
    return result, Pending(ticker, changed_rows, fresh=stored_last is None) if len(changed_rows) else None


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
        around = Bars.of(*bars.read_around(conn, ticker, first, last))
        stored = {**stored, **dict(zip(around.dates, map(tuple, around.values.tolist()), strict=True))}
        order = np.argsort(np.r_[around.dates, batch.dates].astype("datetime64[D]"), kind="stable")
        batch = Bars(np.r_[around.dates, batch.dates][order], np.vstack([around.values, batch.values])[order])
    anomalies = find_anomalies(batch, stored, accept)
    if anomalies:
        raise Flagged(ticker, anomalies, origin, (anomalies[0].date, last))


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
    return bool(revisions.differs(new[:, cols], old[:, cols]).any())


def _changed_rows(batch: Bars, overlap: Overlap) -> Bars:
    """Rows that are new, or whose values differ from the stored ones (within float noise)."""
    positions, new, old, _ = overlap
    keep = np.ones(len(batch), dtype=bool)
    keep[positions] = revisions.differs(new, old, 1e-9).any(axis=1)
    return batch.take(keep)


def _reload(
    conn: sa.Connection, night: Night, end: dt.date, span: tuple[dt.date, dt.date], result: IngestResult
) -> IngestResult:
    """The source changed stored history: fetch all of it and, if one factor re-bases what
    is stored (job.ingest.revisions), write it and have every stored number in price units
    follow (`night.follow`); else flag it and touch nothing. A stored session the source no
    longer serves is kept, in the new units."""
    ticker, source = night.ticker, night.source
    first_stored = bars.first_date(conn, ticker) or night.history_start
    conn.rollback()  # no transaction while the source downloads; the claim keeps others away
    closed = night.calendar.last_closed_session(night.now)
    full, origin = download(
        source,
        ticker,
        night.calendar,
        min(night.history_start, first_stored),
        end,
        result.warnings,
        closed=closed,
    )
    if not len(full):
        raise TickerError(ticker, "history changed at the source but reloading it returned nothing")
    before = bars.stored(conn, ticker, first_stored)
    anomalies = find_anomalies(full, before, night.accept)
    if anomalies:
        raise Flagged(ticker, anomalies, origin, (anomalies[0].date, full.dates[-1]))
    change = revisions.measure(ticker, full, before, night.accept, origin=origin, span=span)
    if change.unserved:
        result.warnings.append(
            f"{ticker} {change.unserved[0]}: {len(change.unserved)} stored sessions the source no longer "
            "serves are kept" + (f", rescaled by {change.factor:.6g}" if change.factor != 1.0 else "")
        )
    bars.write_bars(conn, ticker, full.dates, full.columns(), source.name, night.now)
    bars.rescale_bars(conn, ticker, change.unserved, change.factor)
    if change.changed:
        flags.record_revision(
            conn, ticker, kind=change.kind, factor=change.factor, changed=change.changed, source=source.name,
            now=night.now,
        )  # fmt: skip
    rescaled = night.follow(conn, ticker, change)
    if change.changed:
        result.revised = Revision(
            first_revised_date=change.changed[0], last_revised_date=change.changed[-1], factor=change.factor,
            sessions_changed=len(change.changed), source=source.name, detected_at=night.now,
            predictions_rescaled=rescaled, kind=change.kind,
        )  # fmt: skip
    result.new_rows = sum(1 for d in full.dates if d not in before)
    result.updated_rows = len(change.changed)
    result.last_session = max(full.dates[-1], max(before))
    result.fetched = (full.dates[0], full.dates[-1])
    log.warning("%s: source history %s (factor %.6g), reloaded", ticker, change.kind, change.factor)
    return result
