"""`nightcast report`: per-ticker charts and one self-contained HTML summary, from the tables.

Loading (job.report.data), drawing (job.report.figures) and the page are separate steps.
The summary numbers come from `job.forecast.evaluate.summarize`, which reads the `prediction_errors`
view: the report shows what plain SQL over that view gives, never a second computation.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import jinja2
import numpy as np

from job.config import Settings
from job.db import get_engine
from job.db.forecasts import forecast_tickers
from job.db.migrate import require_current
from job.errors import NightcastError
from job.forecast.evaluate import RangeSummary, summarize
from job.forecast.models import GUARDED, REFERENCE
from job.report.data import load_chart_data
from job.report.figures import FIGURES
from job.support.files import replace_file

DPI = 100
_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("job.report"), autoescape=True, trim_blocks=True, lstrip_blocks=True
)


@dataclass(frozen=True)
class TickerPage:
    ticker: str
    summary: RangeSummary | None
    charts: dict[str, Path]


def render_report(
    settings: Settings, tickers: Iterable[str] | None, start: date | None, end: date | None, out: Path
) -> tuple[Path, list[str]]:
    """Write `<TICKER>_<chart>.png` per ticker and one `index.html` into `out`; returns the HTML
    path and the tickers drawn (None: every ticker with forecasts in the database).

    Every ticker is checked before anything is written, so a bad ticker leaves no half report.
    """
    require_current(settings.database_url)
    first, last = start or date.min, end or date.max
    with get_engine(settings.database_url).connect() as conn:
        tickers = list(forecast_tickers(conn) if tickers is None else tickers)
        if not tickers:
            raise NightcastError("no forecasts stored yet: run `nightcast backfill` or `nightcast run` first")
        loaded = [(load_chart_data(conn, t, first, last), summarize(conn, t, first, last)) for t in tickers]
    out.mkdir(parents=True, exist_ok=True)
    reports = []
    for data, summary in loaded:
        charts = {}
        for name, draw in FIGURES.items():
            path = out / f"{data.ticker}_{name}.png"
            figure = draw(data)
            replace_file(path, lambda tmp, figure=figure: figure.savefig(tmp, dpi=DPI))
            charts[name] = path
        reports.append(TickerPage(data.ticker, summary, charts))
    index = out / "index.html"
    page = render_html(reports, start, end)
    replace_file(index, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return index, tickers


def _cell(metric: str, value: float | None, text: str) -> tuple[str, str | None, str]:
    """A table cell: the shown text plus the full-precision value (`repr`), so readers and
    tests can check exact numbers; no value where there is none or it is not finite."""
    if value is None or not np.isfinite(value):
        return metric, None, text if value is None else "-"
    return metric, repr(value), text


SUMMARY_HEADINGS = {
    "sessions": "matured sessions",
    "rmse": "RMSE (price)",
    "mae": "MAE (price)",
    "mape": "MAPE",
    "rmse_ratio": "RMSE ratio to naive (below 1 beats naive)",
    "dm_pvalue": "Diebold-Mariano p (lstm beats naive)",
    "hit_rate": "hit rate (when the LSTM forecast a move)",
    "up_rate": "up rate (always-up baseline)",
    "coverage_80": "80% interval coverage",
    "coverage_95": "95% interval coverage",
    "width_95": "mean 95% width (price)",
    "winkler_95": "95% Winkler score (lower is better)",
    "network_scaled": "sessions scaled by the network's own spread (else the baseline's)",
}


def summary_rows(summary: RangeSummary) -> dict[str, dict[str, tuple[float | None, str]]]:
    """Per model, per column of the HTML table: (full-precision value, shown text).

    Naive (the reference) forecasts no move, so it has no hit rate and no test against
    itself; its ratio to itself is 1.
    """

    def cell(value: float | None, shown: str) -> tuple[float | None, str]:
        return (None, "-") if value is None else (value, shown.format(value))

    rows: dict[str, dict[str, tuple[float | None, str]]] = {}
    for model, stats in summary.models.items():
        rows[model] = {
            "sessions": (float(stats["n"]), str(stats["n"])),
            "rmse": cell(stats["rmse"], "{:.4f}"),
            "mae": cell(stats["mae"], "{:.4f}"),
            "mape": cell(stats["mape"], "{:.3f}%"),
            "rmse_ratio": (1.0, "1 (reference)")
            if model == REFERENCE
            else cell(summary.ratio(model), "{:.4f}"),
            "dm_pvalue": cell(stats["dm_pvalue"], "{:.3f}"),
            "hit_rate": cell(stats["hit_rate"], "{:.1%} of " + f"{summary.moves(model)} calls"),
            "up_rate": cell(stats["up_rate"], "{:.1%}"),
            "coverage_80": cell(stats["coverage_80"], "{:.1%}"),
            "coverage_95": cell(stats["coverage_95"], "{:.1%}"),
            "width_95": cell(stats["width_95"], "{:.4f}"),
            "winkler_95": cell(stats["winkler_95"], "{:.4f}"),
            "network_scaled": cell(summary.network_scaled / summary.sessions, "{:.0%}"),
        }
    return rows


def render_html(reports: list[TickerPage], start: date | None, end: date | None) -> str:
    """One self-contained page: the PNGs are embedded as data URIs, so it can be mailed as is.
    The template escapes every value it is given (a ticker is text from a user)."""
    pages = [
        {
            "ticker": report.ticker,
            "rows": None if report.summary is None else {
                model: [_cell(metric, *cells[metric]) for metric in SUMMARY_HEADINGS]
                for model, cells in summary_rows(report.summary).items()
            },
            "guarded": report.summary is not None and report.summary.calls == 0,
            "charts": [(name, base64.b64encode(path.read_bytes()).decode("ascii"))
                       for name, path in report.charts.items()],
        }
        for report in reports
    ]  # fmt: skip
    return _TEMPLATES.get_template("index.html.j2").render(
        span=f"{start or 'first forecast'} to {end or 'last forecast'}",
        pages=pages, headings=SUMMARY_HEADINGS.values(), guarded=GUARDED,
    )  # fmt: skip
