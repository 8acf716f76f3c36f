"""The report's four charts of one ticker, each a matplotlib Figure of its `ChartData`.

Figures are built with `matplotlib.figure.Figure`, never pyplot: saving a PNG then always
goes through the Agg canvas, so rendering needs no display (containers, cron) whatever
MPLBACKEND says, and keeps no global figure state between reports.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from job.forecast.models import GUARDED, LEVELS, PRIMARY, REFERENCE, bounds
from job.forecast.scores import rmse_ratio
from job.report.data import ChartData

COLORS = {"actual": "black", PRIMARY: "tab:blue", REFERENCE: "tab:orange"}
LINESTYLES = {PRIMARY: "-", REFERENCE: "--"}
#: Further models (job.forecast.entries), in their order.
OTHER_COLORS = ("tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def _color(data: ChartData, model: str) -> str:
    others = [m for m in data.models if m not in COLORS]
    return COLORS.get(model) or OTHER_COLORS[others.index(model) % len(OTHER_COLORS)]


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
    for level, alpha in zip(sorted(LEVELS, reverse=True), (0.12, 0.22), strict=True):  # the LSTM's bands
        lower, upper = (data.forecasts[name] for name in bounds(level))
        if lower.notna().any():
            ax.fill_between(
                x,
                lower,
                upper,
                color=COLORS[PRIMARY],
                alpha=alpha,
                lw=0,
                label=f"{PRIMARY} {level}% interval",
            )
    ax.plot(x, data.forecasts["actual"], color=COLORS["actual"], lw=1.6, label="actual close")
    for model in data.models:
        ax.plot(
            x,
            data.forecasts[model],
            color=_color(data, model),
            ls=LINESTYLES.get(model, ":"),
            lw=2.4 if model == PRIMARY else 1.4,  # a wide solid line under a dashed one: both show
            marker="." if len(x) <= 60 else None,
            zorder=3 if model == REFERENCE else 2,  # dashed on top: the LSTM line shows in its gaps
            label=f"{model} forecast",
        )
    ax.set_title(f"{data.ticker}: next-session close forecasts vs actual ({_span(data)})")
    if data.forecasts[PRIMARY].equals(data.forecasts[REFERENCE]):
        ax.text(
            0.01, 0.02, f"lstm = naive on every session: {GUARDED}", transform=ax.transAxes, fontsize=8,
        )  # fmt: skip
    ax.set_xlabel("target session")
    ax.set_ylabel("close (price)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    _date_axis(ax)
    return fig


def rolling_figure(data: ChartData) -> Figure:
    """Rolling RMSE per window (same colour per model, one line style per window) and, below,
    the LSTM's RMSE as a ratio to naive's per window: what says whether it is worth anything."""
    fig = Figure(figsize=(10, 5), layout="constrained")
    ax, below = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    styles = ["-", "--", ":", "-."]
    windows = sorted({w for _, w in data.rolling.columns})
    for model, window in data.rolling.columns:
        series = data.rolling[(model, window)].dropna()
        ax.plot(
            pd.to_datetime(series.index),
            series.to_numpy(),
            color=_color(data, model),
            ls=styles[windows.index(window) % len(styles)],
            lw=2.6 if model == PRIMARY else 1.2,  # naive on top, thinner: an equal LSTM shows beneath
            zorder=2 if model == PRIMARY else 3,
            marker="." if len(series) <= 60 else None,
            label=f"{model}, {window}-session RMSE",
        )
    if data.rolling.empty:
        ax.text(0.5, 0.5, "no full rolling window in this range yet", ha="center", transform=ax.transAxes)
    ax.set_title(f"{data.ticker}: rolling RMSE of the forecasts, full windows only")
    ax.set_ylabel("RMSE (price)")
    ax.grid(alpha=0.3)
    for window in windows:
        if (PRIMARY, window) in data.rolling.columns and (REFERENCE, window) in data.rolling.columns:
            own, naive = data.rolling[(PRIMARY, window)], data.rolling[(REFERENCE, window)]
            ratio = own.combine(naive, rmse_ratio).dropna()
            below.plot(
                pd.to_datetime(ratio.index), ratio.to_numpy(), color=COLORS[PRIMARY],
                ls=styles[windows.index(window) % len(styles)], lw=1.4, label=f"{window}-session ratio",
            )  # fmt: skip
    below.axhline(1.0, color=COLORS[REFERENCE], lw=1.0, ls="--", label="naive (1)")
    below.set_ylabel("lstm RMSE / naive RMSE")
    below.set_xlabel("session the window ends on (below 1: the LSTM beats naive)")
    below.grid(alpha=0.3)
    if not data.rolling.empty:
        ax.legend(loc="best")
        below.legend(loc="best")
        _date_axis(below)
    return fig


def coverage_figure(data: ChartData) -> Figure:
    """Rolling interval coverage of both models over the widest window, against the nominal levels."""
    fig = Figure(figsize=(10, 5), layout="constrained")
    ax = fig.add_subplot()
    for (column, model), series in data.coverage.items():
        level = column.removeprefix("coverage_")
        ax.plot(
            pd.to_datetime(series.index), 100 * series.to_numpy(), color=_color(data, model),
            ls="-" if level == "95" else "--", lw=1.4, label=f"{model}, {level}% interval",
        )  # fmt: skip
    for nominal in LEVELS:
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
    every = np.concatenate([data.errors[m] for m in data.models])
    if every.size:
        bins = np.histogram_bin_edges(every, bins=min(30, max(5, every.size // 2)))
        for model in data.models:
            ax.hist(
                data.errors[model],
                bins=bins,
                alpha=0.55,
                color=_color(data, model),
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
