"""What `nightcast status` shows: is the schema current, what is stored, how did the last run go.

Per ticker it answers the morning questions in one screen: did last night's prices arrive,
what does the model forecast next, how old is the model, and is it beating naive right now.
The forecast and skill lines read the `latest_predictions` and `model_skill` views, so they
show exactly what a SQL user would get from them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from job.config import Settings
from job.db import get_engine
from job.db.claims import Claims
from job.db.flags import flag_messages
from job.db.migrate import current_revision, head_revision, require_existing, unknown_revision
from job.db.overview import TickerStatus, ticker_status
from job.db.runs import last_run as latest_run
from job.forecast.entries import model_names, versioned_names
from job.forecast.models import GUARDED, PRIMARY, REFERENCE
from job.support.clock import utcnow


@dataclass(frozen=True)
class _Snapshot:
    """What both renderings show, read once: the schema and, when it is current, the rest."""

    revision: str | None
    head: str
    unknown: str | None  # why the revision is not one of ours
    tickers: dict[str, TickerStatus] = field(default_factory=dict)
    flags: dict[str, str] = field(default_factory=dict)
    last_run: sa.Row[Any] | None = None
    abandoned: bool = False  # the last run says `running`, but its process died


def _read(settings: Settings) -> _Snapshot:
    url = settings.database_url
    require_existing(url)
    revision, head = current_revision(url), head_revision(url)
    unknown = unknown_revision(url, revision)
    if revision != head:
        return _Snapshot(revision, head, unknown)
    with get_engine(url).connect() as conn:
        tickers, flags = ticker_status(conn, versioned_names()), flag_messages(conn)
        last_run = latest_run(conn)
    abandoned = (
        last_run is not None
        and last_run.status == "running"
        and not _alive(url, (last_run.details or {}).get("claim"))
    )
    return _Snapshot(revision, head, unknown, tickers, flags, last_run, abandoned)


def render_status(settings: Settings, now: datetime | None = None) -> str:
    seen = _read(settings)
    revision, head = seen.revision, seen.head
    lines = [
        f"database: {settings.safe_database_url}",
        f"schema:   revision {revision or 'none'}"
        + (
            f" ({seen.unknown})"
            if seen.unknown
            else ""
            if revision == head
            else f" (head is {head}: run `nightcast migrate`)"
        ),
    ]
    if revision != head:
        return "\n".join(lines)
    tickers, flags, last_run = seen.tickers, seen.flags, seen.last_run
    if not tickers:
        lines.append("prices:   none stored yet")
    for ticker, state in tickers.items():
        lines.append(f"{ticker}:")
        if ticker in flags:  # first: the stored lines below stop where the refused bars begin
            lines.append(f"  flagged:  {flags[ticker]}")
        lines += [f"  {line}" for line in _ticker_lines(state, settings.policy.skill_window, now or utcnow())]
    for ticker in sorted(flags.keys() - tickers.keys()):
        lines += [f"{ticker}:", f"  flagged:  {flags[ticker]}", "  prices:   none stored"]
    if last_run is None:
        lines.append("last run: none")
    else:
        state = "running, abandoned: the process died" if seen.abandoned else last_run.status
        lines.append(
            f"last run: #{last_run.id} {last_run.kind} {state}, started "
            f"{last_run.started_at:%Y-%m-%d %H:%M:%S}"
            + (f", error: {last_run.error}" if last_run.error else "")
        )
    return "\n".join(lines)


def _alive(url: str, claim: str | None) -> bool:
    """Whether the cycle that wrote a `running` row still lives (it holds its claim)."""
    if claim is None:
        return False
    with Claims(url) as claims:
        return claims.held_elsewhere(claim)


def _ticker_lines(state: TickerStatus, skill_window: int, now: datetime) -> list[str]:
    lines = [f"prices:   {state.rows} rows, last session {state.last_session}"]
    rows = {name: state.forecasts.get(name) for name in model_names()}
    lstm, naive = rows.get(PRIMARY), rows.get(REFERENCE)
    if not any(rows.values()):
        lines.append("forecast: none yet")
    else:
        shown = next(row for row in rows.values() if row is not None)
        parts = []
        for name, row in rows.items():
            if row is None:
                parts.append(f"{name} -")
            elif row.target_date != shown.target_date:  # one model lagging is worth seeing
                parts.append(f"{name} {row.predicted_close:.2f} for {row.target_date}")
            else:
                change = "" if row.implied_change_pct is None else f" ({row.implied_change_pct:+.2f}%)"
                band = "" if row.lower_95 is None else f" [95%: {row.lower_95:.2f}..{row.upper_95:.2f}]"
                parts.append(f"{name} {row.predicted_close:.2f}{change}{band}")
        lines.append(f"forecast: {shown.target_date} (as of {shown.as_of_date}): " + ", ".join(parts))
        if lstm is not None and naive is not None and lstm.predicted_close == naive.predicted_close:
            lines.append(f"guard:    lstm = naive: {GUARDED}")
        if shown.scale is not None:
            own = "none" if shown.network_scale is None else f"{shown.network_scale:.2%}"
            source = shown.scale_source
            lines.append(
                f"scale:    {shown.scale:.2%} a session from the {source} (the network's own: {own})"
            )
    model = state.model
    if model is None:
        lines.append("model:    none trained yet")
    else:
        lines.append(
            f"model:    #{model.id} {model.kind}, trained through {model.trained_through} "
            f"({state.sessions_since_training} sessions behind prices), "
            f"created {_ago(now, model.created_at)}"
        )
    widest = state.skill[-1].window_days if state.skill else None
    chosen = [r for r in state.skill if r.window_days == skill_window] or [
        r for r in state.skill if r.window_days == widest
    ]
    names = model_names()
    chosen.sort(key=lambda r: names.index(r.model) if r.model in names else len(names))  # as listed
    if not chosen:
        lines.append("skill:    no matured forecasts yet")
    for row in chosen:
        ratio = "-" if row.rmse_ratio is None else f"{row.rmse_ratio:.3f}"
        partial = "" if row.n >= row.window_days else f", only {row.n} sessions so far"
        lines.append(
            f"skill:    {row.window_days}-session RMSE {row.model} {row.rmse:.4f} vs naive "
            f"{row.naive_rmse:.4f}, ratio {ratio}{_evidence(row)} (to {row.date}{partial})"
        )
    return lines


def _evidence(row: sa.Row) -> str:
    """Whether the difference is real, direction, and how the intervals held (if known)."""
    parts = []
    if row.dm_pvalue is not None:
        parts.append(f"DM p {row.dm_pvalue:.2f}")
    if row.hit_rate is not None:
        parts.append(f"hit rate {row.hit_rate:.0%} (always-up {row.up_rate:.0%})")
    if row.coverage_80 is not None and row.coverage_95 is not None:
        parts.append(f"coverage {row.coverage_80:.0%} of 80%, {row.coverage_95:.0%} of 95%")
    return "".join(f", {part}" for part in parts)


def _ago(now: datetime, then: datetime) -> str:
    seconds = max((now - then) / timedelta(seconds=1), 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{then:%Y-%m-%d %H:%M} UTC, {seconds / size:.0f}{unit} ago"
    return f"{then:%Y-%m-%d %H:%M} UTC, {seconds:.0f}s ago"


def status_json(settings: Settings) -> str:
    """`nightcast status --json`: {"database", "schema": {"revision", "head"}, "tickers":
    {ticker: {"rows", "last_session", "flag", "forecasts": {model: latest_predictions row},
    "model": {id, kind, trained_through, created_at}, "sessions_since_training", "skill":
    [model_skill rows]}}, "last_run": job_runs row without details, with "abandoned", or
    null}. Rows keep their SQL column names; dates and stamps are ISO strings."""
    seen = _read(settings)
    document: dict[str, Any] = {
        "database": settings.safe_database_url,
        "schema": {"revision": seen.revision, "head": seen.head},
        "tickers": {},
        "last_run": None,
    }
    for ticker in sorted(seen.tickers.keys() | seen.flags.keys()):
        state = seen.tickers.get(ticker)
        document["tickers"][ticker] = {
            "rows": state.rows if state else 0,
            "last_session": state.last_session if state else None,
            "flag": seen.flags.get(ticker),
            "forecasts": {m: row._asdict() for m, row in state.forecasts.items()} if state else {},
            "model": state.model._asdict() if state and state.model else None,
            "sessions_since_training": state.sessions_since_training if state else None,
            "skill": [row._asdict() for row in state.skill] if state else [],
        }
    if seen.last_run is not None:
        row = {k: v for k, v in seen.last_run._asdict().items() if k != "details"}
        document["last_run"] = {**row, "abandoned": seen.abandoned}
    return json.dumps(document, indent=2, default=_iso)


def _iso(value: object) -> str:
    return value.isoformat() if isinstance(value, date | datetime) else str(value)
