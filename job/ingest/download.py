"""One ticker's download: the source's closed bars over a range, validated (job.ingest.validate).

No transaction is open while a source downloads: retries and backoff may take a minute.
"""

from __future__ import annotations

import datetime as dt

from job.ingest.sources.base import Bars, PriceSource
from job.ingest.validate import validate
from job.support.calendar import Sessions


def download(
    source: PriceSource,
    ticker: str,
    calendar: Sessions,
    start: dt.date,
    end: dt.date,
    warnings: list[str],
    *,
    closed: dt.date,
) -> tuple[Bars, str | None]:
    """The source's bars start..end that pass validation, and the file they came from, if
    any; what is worth saying about them goes to `warnings`. Rows of a file dated after the
    last `closed` session are named: a session that has not closed yet is never stored, but
    a file that holds one is worth a look."""
    if start < calendar.first:
        warnings.append(
            f"{ticker} {start}: history before {calendar.first} is not fetched "
            f"(the {calendar.name} calendar starts there)"
        )
        start = calendar.first
    frame = source.fetch(ticker, start, end)
    later = frame.attrs.get("after_end", [])
    if later and end == closed:
        warnings.append(
            f"{ticker} {later[0]}: {len(later)} rows dated after the last closed session {closed} "
            "are not stored (a session that has not closed yet)"
        )
    origin = frame.attrs.get("origin")
    checked = validate(frame, ticker, calendar, origin=origin)
    warnings.extend(checked.warnings)
    # Only closed sessions: a source may hand back a bar past `end` (an in-progress one).
    return checked.bars.take(checked.bars.dates <= end), origin
