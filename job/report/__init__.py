"""`nightcast report`: the tables drawn as charts and one HTML page (job.report.page)."""

from job.report.data import ChartData, load_chart_data
from job.report.figures import FIGURES, coverage_figure, error_figure, forecast_figure, rolling_figure
from job.report.page import render_report

__all__ = [
    "FIGURES",
    "ChartData",
    "coverage_figure",
    "error_figure",
    "forecast_figure",
    "load_chart_data",
    "render_report",
    "rolling_figure",
]
