"""What a price revision rewrites, inside the caller's transaction (job.revisions decides it).

Every stored number in price units follows the revision: the bars kept for sessions the
source stopped serving, each forecast's point, both intervals at both levels and the
network's own forecast, and the validation RMSEs kept with each model version. A forecast
is in the units of its as-of session's close, so it takes that session's factor.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence

import sqlalchemy as sa

from job.db.schema import (
    PREDICTED_PRICES,
    STORED_PRICES,
    model_versions,
    predictions,
    price_revisions,
    prices,
)

#: Price-unit figures that a model version's `params` keep of its validation tail.
VALIDATION_PRICES = ("val_rmse", "val_naive_rmse")


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


def rescale_forecasts(conn: sa.Connection, ticker: str, factor: float, own: Mapping[dt.date, float]) -> int:
    """Every forecast of the ticker times `factor`, but those as of a session in `own`, which
    take that session's own ratio instead. Returns the number of forecasts changed."""
    scaled = 0
    if factor != 1.0:
        everything = sa.update(predictions).where(predictions.c.ticker == ticker)
        scaled = conn.execute(everything.values(_times(factor))).rowcount
    by_day = sa.update(predictions).where(
        predictions.c.ticker == ticker, predictions.c.as_of_date == sa.bindparam("day")
    )
    for day, ratio in own.items():  # few: the sessions someone accepted as corrections
        touched = conn.execute(by_day.values(_times(ratio / factor)), {"day": day}).rowcount
        scaled += 0 if factor != 1.0 else touched
    return scaled


def _times(factor: float) -> dict[str, sa.ColumnElement[float]]:
    return {c: predictions.c[c] * factor for c in PREDICTED_PRICES}


def rescale_validation(conn: sa.Connection, ticker: str, factor: float) -> int:
    """The price-unit validation figures in each version's `params`, times `factor`. A
    version whose params cannot be read is left as it is (it is history, and unused)."""
    if factor == 1.0:
        return 0
    rows = conn.execute(
        sa.select(model_versions.c.id, sa.cast(model_versions.c.params, sa.Text)).where(
            model_versions.c.ticker == ticker
        )
    ).all()
    updates = []
    for version_id, text in rows:
        try:
            params = json.loads(text)
            figures = params["forecaster"]
        except (TypeError, ValueError, KeyError):
            continue
        if not isinstance(figures, dict):
            continue
        for name in VALIDATION_PRICES:
            if isinstance(figures.get(name), int | float):
                figures[name] *= factor
        updates.append({"version": version_id, "params": params})
    if updates:
        conn.execute(
            sa.update(model_versions).where(model_versions.c.id == sa.bindparam("version")),
            updates,
        )
    return len(updates)


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
