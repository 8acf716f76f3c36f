"""`nightcast report`: per-ticker charts and one self-contained HTML summary, from the tables.

Loading and drawing are separate steps: `load_chart_data` returns the exact frames that get
plotted, and each `*_figure` function returns a matplotlib Figure, so tests can check the
plotted series and values rather than only that a PNG exists. Figures are built with
`matplotlib.figure.Figure`, never pyplot: saving a PNG then always goes through the Agg
canvas, so rendering needs no display (containers, cron) whatever MPLBACKEND says, and keeps
no global figure state between reports.

The summary numbers come from `job.evaluate.summarize`, which reads the `prediction_errors`
view: the report shows what plain SQL over that view gives, never a second computation.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from job.config import Settings
from job.db import get_engine, predictions, rolling_metrics
from job.db.bars import read_bars
from job.db.migrate import require_current
from job.errors import NightcastError
from job.evaluate import MODELS, RangeSummary, summarize
from job.files import replace_file

BOUNDS = ("lower_80", "upper_80", "lower_95", "upper_95")
COLORS = {"actual": "black", "lstm": "tab:blue", "naive": "tab:orange"}
LINESTYLES = {"lstm": "-", "naive": "--"}
DPI = 100


@dataclass(frozen=True)
class ChartData:
    """Everything the four charts of one ticker plot.

    forecasts: indexed by target session; `actual` (NaN until the session closed), `lstm`,
        `naive`: each forecast sits at the session it forecast, not the day it was made;
        `lower_80`..`upper_95`: the LSTM forecast's intervals (NaN where none was stored).
    rolling: indexed by date; one column per (model, window_days) holding the rolling RMSE,
        full windows only (n == window_days), so early points never look better than they are.
    coverage: indexed by date; (model, level) columns holding the rolling coverage of the
        widest full window.
    errors: predicted - actual per model, over the sessions where both models matured
        (the same sessions `summarize` uses).
    """

    ticker: str
    start: date
    end: date
    forecasts: pd.DataFrame
    rolling: pd.DataFrame
    coverage: pd.DataFrame
    errors: dict[str, np.ndarray]


def load_chart_data(conn: sa.Connection, ticker: str, start: date, end: date) -> ChartData:
    """The plotted frames for target sessions in [start, end]; an error if none were forecast."""
    query = (
        sa.select(
            predictions.c.target_date,
            predictions.c.model,
            predictions.c.predicted_close,
            *(predictions.c[b] for b in BOUNDS),
        )
        .where(predictions.c.ticker == ticker, predictions.c.target_date.between(start, end))
        .order_by(predictions.c.target_date)
    )
    forecast_rows = conn.execute(query).all()
    if not forecast_rows:
        where = "" if (start, end) == (date.min, date.max) else f" with a target session in {start}..{end}"
        raise NightcastError(f"{ticker}: no predictions stored{where}")
    rows = pd.DataFrame(forecast_rows, columns=["target_date", "model", "predicted_close", *BOUNDS])
    forecasts = rows.pivot(index="target_date", columns="model", values="predicted_close").reindex(
        columns=MODELS
    )
    forecasts = forecasts.join(rows[rows["model"] == "lstm"].set_index("target_date")[list(BOUNDS)])
    first, last = forecasts.index.min(), forecasts.index.max()
    bars = read_bars(conn, ticker, first, last)
    closes = dict(zip(bars.dates, bars.column("close"), strict=True))
    forecasts.insert(0, "actual", [closes.get(d, np.nan) for d in forecasts.index])
    forecasts.index.name = "target_date"
    forecasts.columns.name = None
    forecasts = forecasts.astype(float)

    metric_rows = conn.execute(
        sa.select(
            rolling_metrics.c.date,
            rolling_metrics.c.model,
            rolling_metrics.c.window_days,
            rolling_metrics.c.rmse,
            rolling_metrics.c.coverage_80,
            rolling_metrics.c.coverage_95,
        )
        .where(rolling_metrics.c.ticker == ticker, rolling_metrics.c.date.between(start, end))
        .where(rolling_metrics.c.n == rolling_metrics.c.window_days)
        .order_by(rolling_metrics.c.window_days, rolling_metrics.c.model, rolling_metrics.c.date)
    ).all()
    metrics = pd.DataFrame(
        metric_rows, columns=["date", "model", "window_days", "rmse", "coverage_80", "coverage_95"]
    )
    rolling = metrics.pivot(index="date", columns=["model", "window_days"], values="rmse").sort_index()
    rolling = rolling.reindex(columns=sorted(rolling.columns, key=lambda c: (c[1], MODELS.index(c[0]))))
    widest = metrics[metrics["window_days"] == metrics["window_days"].max()]
    coverage = widest.pivot(index="date", columns="model", values=["coverage_80", "coverage_95"]).sort_index()
    coverage = coverage.astype(float).dropna(how="all")

    matured = forecasts.dropna(subset=["actual", *MODELS])
    errors = {model: (matured[model] - matured["actual"]).to_numpy() for model in MODELS}
    return ChartData(ticker, start, end, forecasts, rolling, coverage, errors)


def _date_axis(ax: Axes) -> None:
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _span(data: ChartData) -> str:
    index = data.forecasts.index
    return f"{index.min()} to {index.max()}"


def forecast_figure(data: ChartData) -> Figure:
    """Actual close and both forecasts, each at its target session (the tutorial's chart, fixed)."""
    fig = Figure(figsize=(10, 5), layout="constrained")
    ax = fig.add_subplot()
    x = pd.to_datetime(data.forecasts.index)
    for level, alpha in (("95", 0.12), ("80", 0.22)):  # the LSTM's intervals as bands
        lower, upper = data.forecasts[f"lower_{level}"], data.forecasts[f"upper_{level}"]
        if lower.notna().any():
            ax.fill_between(
                x, lower, upper, color=COLORS["lstm"], alpha=alpha, lw=0, label=f"lstm {level}% interval"
            )
    ax.plot(x, data.forecasts["actual"], color=COLORS["actual"], lw=1.6, label="actual close")
    for model in MODELS:
        ax.plot(
            x,
            data.forecasts[model],
            color=COLORS[model],
            ls=LINESTYLES[model],
            lw=1.2,
            marker="." if len(x) <= 60 else None,
            zorder=3 if model == "lstm" else 2,  # the model under test stays visible on top
            label=f"{model} forecast",
        )
    ax.set_title(f"{data.ticker}: next-session close forecasts vs actual ({_span(data)})")
    ax.set_xlabel("target session")
    ax.set_ylabel("close (price)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    _date_axis(ax)
    return fig


def rolling_figure(data: ChartData) -> Figure:
    """Rolling RMSE per window: same colour per model, one line style per window."""
    fig = Figure(figsize=(10, 5), layout="constrained")
    ax = fig.add_subplot()
    styles = ["-", "--", ":", "-."]
    windows = sorted({w for _, w in data.rolling.columns})
    for model, window in data.rolling.columns:
        series = data.rolling[(model, window)].dropna()
        ax.plot(
            pd.to_datetime(series.index),
            series.to_numpy(),
            color=COLORS[model],
            ls=styles[windows.index(window) % len(styles)],
            lw=1.4,
            marker="." if len(series) <= 60 else None,
            label=f"{model}, {window}-session RMSE",
        )
    if data.rolling.empty:
        ax.text(0.5, 0.5, "no full rolling window in this range yet", ha="center", transform=ax.transAxes)
    ax.set_title(f"{data.ticker}: rolling RMSE of the forecasts, full windows only")
    ax.set_xlabel("session the window ends on")
    ax.set_ylabel("RMSE (price)")
    ax.grid(alpha=0.3)
    if not data.rolling.empty:
        ax.legend(loc="best")
        _date_axis(ax)
    return fig


def coverage_figure(data: ChartData) -> Figure:
    """Rolling interval coverage of both models over the widest window, against the nominal levels."""
    fig = Figure(figsize=(10, 5), layout="constrained")
    ax = fig.add_subplot()
    for (column, model), series in data.coverage.items():
        level = column.removeprefix("coverage_")
        ax.plot(
            pd.to_datetime(series.index), 100 * series.to_numpy(), color=COLORS[model],
            ls="-" if level == "95" else "--", lw=1.4, label=f"{model}, {level}% interval",
        )  # fmt: skip
    for nominal in (80, 95):
        ax.axhline(nominal, color="grey", lw=0.8, ls=":")
    if data.coverage.empty:
        ax.text(0.5, 0.5, "no interval has matured in this range yet", ha="center", transform=ax.transAxes)
    else:
        ax.legend(loc="lower left")
        _date_axis(ax)
    ax.set_title(f"{data.ticker}: share of actual closes inside the intervals (rolling, widest window)")
    ax.set_xlabel("session the window ends on")
    ax.set_ylabel("coverage (%)")
    ax.grid(alpha=0.3)
    return fig


def error_figure(data: ChartData) -> Figure:
    """Histogram of forecast errors (predicted - actual) of both models on shared bins."""
    fig = Figure(figsize=(10, 5), layout="constrained")
    ax = fig.add_subplot()
    every = np.concatenate([data.errors[m] for m in MODELS])
    if every.size:
        bins = np.histogram_bin_edges(every, bins=min(30, max(5, every.size // 2)))
        for model in MODELS:
            ax.hist(
                data.errors[model],
                bins=bins,
                alpha=0.55,
                color=COLORS[model],
                label=f"{model} (n={data.errors[model].size}, mean {data.errors[model].mean():+.2f})",
            )
        ax.axvline(0, color="black", lw=0.8)
        ax.legend(loc="best")
    else:
        ax.text(0.5, 0.5, "no matured forecasts in this range yet", ha="center", transform=ax.transAxes)
    ax.set_title(f"{data.ticker}: distribution of forecast errors ({_span(data)})")
    ax.set_xlabel("error = predicted - actual close (price)")
    ax.set_ylabel("sessions")
    ax.grid(alpha=0.3)
    return fig


FIGURES = {
    "forecast": forecast_figure,
    "rolling": rolling_figure,
    "coverage": coverage_figure,
    "errors": error_figure,
}


@dataclass(frozen=True)
class TickerReport:
    ticker: str
    summary: RangeSummary | None
    charts: dict[str, Path]


def render_report(
    settings: Settings, tickers: Iterable[str], start: date | None, end: date | None, out: Path
) -> Path:
    """Write `<TICKER>_<chart>.png` per ticker and one `index.html` into `out`; returns the HTML path.

    Every ticker is checked before anything is written, so a bad ticker leaves no half report.
    """
    require_current(settings.database_url)
    first, last = start or date.min, end or date.max
    with get_engine(settings.database_url).connect() as conn:
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
        reports.append(TickerReport(data.ticker, summary, charts))
    index = out / "index.html"
    page = render_html(reports, start, end)
    replace_file(index, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return index


def _cell(metric: str, value: float | None, text: str) -> str:
    """The shown text plus the full-precision value, so readers and tests can check exact numbers."""
    if value is None or not np.isfinite(value):
        return f'<td data-metric="{metric}">{html.escape(text if value is None else "-")}</td>'
    return f'<td data-metric="{metric}" data-value="{value!r}">{html.escape(text)}</td>'


COLUMNS = {
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
}


def summary_rows(summary: RangeSummary) -> dict[str, dict[str, tuple[float | None, str]]]:
    """Per model, per column of the HTML table: (full-precision value, shown text).

    Naive forecasts no move, so it has no hit rate and no test against itself; its ratio to
    itself is 1.
    """

    def cell(value: float | None, shown: str) -> tuple[float | None, str]:
        return (None, "-") if value is None else (value, shown.format(value))

    rows: dict[str, dict[str, tuple[float | None, str]]] = {}
    for model in MODELS:
        stats = getattr(summary, model)
        rows[model] = {
            "sessions": (float(summary.sessions), str(summary.sessions)),
            "rmse": cell(stats["rmse"], "{:.4f}"),
            "mae": cell(stats["mae"], "{:.4f}"),
            "mape": cell(stats["mape"], "{:.3f}%"),
            "rmse_ratio": cell(summary.rmse_ratio, "{:.4f}") if model == "lstm" else (1.0, "1 (reference)"),
            "dm_pvalue": cell(stats["dm_pvalue"], "{:.3f}"),
            "hit_rate": cell(stats["hit_rate"], "{:.1%} of " + f"{summary.calls} calls"),
            "up_rate": cell(stats["up_rate"], "{:.1%}"),
            "coverage_80": cell(stats["coverage_80"], "{:.1%}"),
            "coverage_95": cell(stats["coverage_95"], "{:.1%}"),
            "width_95": cell(stats["width_95"], "{:.4f}"),
            "winkler_95": cell(stats["winkler_95"], "{:.4f}"),
        }
    return rows


def render_html(reports: list[TickerReport], start: date | None, end: date | None) -> str:
    """One self-contained page: the PNGs are embedded as data URIs, so it can be mailed as is."""
    span = f"{start or 'first forecast'} to {end or 'last forecast'}"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>nightcast report</title>',
        "<style>body{font-family:sans-serif;max-width:1040px;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}"
        "td[data-value]{text-align:right}img{max-width:100%}</style></head><body>",
        f"<h1>nightcast report: target sessions {html.escape(span)}</h1>",
        "<p>Forecasts are for the next session's close; naive is the last known close. "
        "Numbers are over sessions where both models' forecasts matured "
        "(the <code>prediction_errors</code> view).</p>",
    ]
    for report in reports:
        ticker = html.escape(report.ticker)
        parts.append(f'<section id="{ticker}"><h2>{ticker}</h2>')
        if report.summary is None:
            parts.append("<p>No matured forecasts in this range yet.</p>")
        else:
            parts.append(f'<table class="summary" data-ticker="{ticker}">')
            parts.append("<tr><th>model</th>" + "".join(f"<th>{h}</th>" for h in COLUMNS.values()) + "</tr>")
            for model, cells in summary_rows(report.summary).items():
                parts.append(
                    f'<tr data-model="{model}"><th>{model}</th>'
                    + "".join(_cell(metric, *cells[metric]) for metric in COLUMNS)
                    + "</tr>"
                )
            parts.append("</table>")
        for name, path in report.charts.items():
            encoded = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(
                f'<p><img alt="{ticker} {name} chart" data-chart="{name}" '
                f'src="data:image/png;base64,{encoded}"></p>'
            )
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
