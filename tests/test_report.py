"""`nightcast report` on a small real backfill: the charts plot the stored series and the HTML
table carries the same numbers as `summarize` and plain SQL over `prediction_errors`."""

from __future__ import annotations

import base64
import math
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from matplotlib.dates import num2date
from PIL import Image

from job.cli import main
from job.db import get_engine
from job.forecast.evaluate import summarize
from job.report import error_figure, forecast_figure, load_chart_data, rolling_figure
from tests.conftest import SAMPLE_CSV, tiny_model_env

START, END = date(2020, 5, 1), date(2020, 5, 29)  # 20 target sessions; the last forecast is for June 1
REPORT_END = date(2020, 6, 30)


@pytest.fixture
def backfilled(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database holding a tiny-model backfill of May 2020, with windows short enough to fill."""
    env = {**tiny_model_env(), "NIGHTCAST_HISTORY_START": "2019-01-01", "NIGHTCAST_METRIC_WINDOWS": "3,5"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    folder = tmp_path / "csv"
    folder.mkdir()
    pd.read_csv(SAMPLE_CSV).to_csv(folder / "TSLA.csv", index=False)
    args = ["--database-url", migrated_url, "--source", "csv", "--csv", str(folder), "--tickers", "TSLA"]
    assert main(["backfill", *args, "--start", str(START), "--end", str(END)]) == 0
    return migrated_url


def rows(url: str, sql: str) -> list[tuple]:
    with get_engine(url).connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def report(url: str, out: Path, *extra: str) -> int:
    return main(["report", "--database-url", url, "--tickers", "TSLA", "--out", str(out), *extra])


def html_table(page: str) -> dict[str, dict[str, tuple[str | None, str]]]:
    """{model: {metric: (data-value, shown text)}} from the summary table."""
    table: dict[str, dict[str, tuple[str | None, str]]] = {}
    for model, cells in re.findall(r'<tr data-model="(\w+)">(.*?)</tr>', page):
        table[model] = {
            metric: (value or None, text)
            for metric, value, text in re.findall(
                r'<td data-metric="(\w+)"(?: data-value="([^"]*)")?>([^<]*)</td>', cells
            )
        }
    return table


def test_html_table_equals_summarize_and_plain_sql(backfilled: str, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert report(backfilled, out, "--start", str(START), "--end", str(REPORT_END)) == 0
    page = (out / "index.html").read_text()
    table = html_table(page)
    with get_engine(backfilled).connect() as conn:
        summary = summarize(conn, "TSLA", START, REPORT_END)
    assert summary is not None and summary.sessions == 20

    # exactly what summarize computed, both the full value and the shown text
    for model in ("lstm", "naive"):
        stats = getattr(summary, model)
        cells = table[model]
        assert cells["sessions"] == ("20.0", "20")
        assert float(cells["rmse"][0]) == stats["rmse"] and cells["rmse"][1] == f"{stats['rmse']:.4f}"
        assert float(cells["mae"][0]) == stats["mae"] and cells["mae"][1] == f"{stats['mae']:.4f}"
        assert float(cells["mape"][0]) == stats["mape"] and cells["mape"][1] == f"{stats['mape']:.3f}%"
        for name in ("coverage_80", "coverage_95", "width_95", "winkler_95"):
            assert float(cells[name][0]) == stats[name]
    assert float(table["lstm"]["rmse_ratio"][0]) == summary.rmse_ratio
    assert summary.lstm["hit_rate"] is not None
    assert float(table["lstm"]["hit_rate"][0]) == summary.lstm["hit_rate"]
    assert table["naive"]["hit_rate"] == (None, "-") and table["naive"]["dm_pvalue"] == (None, "-")

    # ...and what anyone gets from plain SQL over the view
    by_sql = {
        model: (n, math.sqrt(sse / n), sae / n, mape)
        for model, n, sse, sae, mape in rows(
            backfilled,
            "SELECT model, COUNT(*), SUM(error * error), SUM(ABS(error)), AVG(abs_pct_error) "
            f"FROM prediction_errors WHERE ticker = 'TSLA' AND target_date BETWEEN '{START}' "
            f"AND '{REPORT_END}' GROUP BY model",
        )
    }
    for model, (n, rmse, mae, mape) in by_sql.items():
        assert n == 20
        assert float(table[model]["rmse"][0]) == pytest.approx(rmse, rel=1e-12)
        assert float(table[model]["mae"][0]) == pytest.approx(mae, rel=1e-12)
        assert float(table[model]["mape"][0]) == pytest.approx(mape, rel=1e-12)
    assert float(table["lstm"]["rmse_ratio"][0]) == pytest.approx(by_sql["lstm"][1] / by_sql["naive"][1])
    pairs = rows(
        backfilled,
        "SELECT l.predicted_close, n.predicted_close, l.actual_close FROM prediction_errors l "
        "JOIN prediction_errors n ON n.ticker = l.ticker AND n.target_date = l.target_date "
        "AND n.model = 'naive' WHERE l.model = 'lstm' AND l.ticker = 'TSLA'",
    )
    hits = [np.sign(lstm - last) == np.sign(actual - last) for lstm, last, actual in pairs if lstm != last]
    assert float(table["lstm"]["hit_rate"][0]) == pytest.approx(np.mean(hits))
    assert f"of {len(hits)} calls" in table["lstm"]["hit_rate"][1]
    coverage = rows(
        backfilled,
        "SELECT model, AVG(inside_80), AVG(inside_95), AVG(upper_95 - lower_95) FROM prediction_errors "
        f"WHERE ticker = 'TSLA' AND target_date BETWEEN '{START}' AND '{REPORT_END}' GROUP BY model",
    )
    for model, inside_80, inside_95, width in coverage:
        assert float(table[model]["coverage_80"][0]) == pytest.approx(float(inside_80), rel=1e-12)
        assert float(table[model]["coverage_95"][0]) == pytest.approx(float(inside_95), rel=1e-12)
        assert float(table[model]["width_95"][0]) == pytest.approx(float(width), rel=1e-12)


def test_pngs_are_real_charts_and_embedded_in_the_page(backfilled: str, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert report(backfilled, out) == 0
    page = (out / "index.html").read_text()
    embedded = dict(re.findall(r'data-chart="(\w+)" src="data:image/png;base64,([^"]+)"', page))
    assert set(embedded) == {"forecast", "rolling", "coverage", "errors"}
    for name, encoded in embedded.items():
        path = out / f"TSLA_{name}.png"
        assert base64.b64decode(encoded) == path.read_bytes()  # self-contained: same image inline
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (1000, 500)
            colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
            assert colours is not None and len(colours) > 50  # drawn on, not a blank canvas
    assert "<h2>TSLA</h2>" in page and 'src="TSLA' not in page  # no external references


def test_symlinks_already_in_the_folder_are_replaced_not_followed(backfilled: str, tmp_path: Path) -> None:
    out, victim = tmp_path / "report", tmp_path / "precious.txt"
    out.mkdir()
    victim.write_text("keep me")
    for name in ("TSLA_forecast.png", "index.html"):
        (out / name).symlink_to(victim)
    assert report(backfilled, out) == 0
    assert victim.read_text() == "keep me"
    for name in ("TSLA_forecast.png", "index.html"):
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 1000
    assert sorted(p.name for p in out.iterdir()) == [
        "TSLA_coverage.png", "TSLA_errors.png", "TSLA_forecast.png", "TSLA_rolling.png", "index.html"
    ]  # fmt: skip


def test_charts_plot_the_stored_series_at_their_target_sessions(backfilled: str) -> None:
    with get_engine(backfilled).connect() as conn:
        data = load_chart_data(conn, "TSLA", START, REPORT_END)
    stored = rows(
        backfilled,
        "SELECT target_date, model, predicted_close FROM predictions WHERE ticker = 'TSLA' "
        "ORDER BY target_date",
    )
    closes = dict(rows(backfilled, "SELECT date, close FROM prices WHERE ticker = 'TSLA'"))
    target_dates = sorted({str(d) for d, _, _ in stored})
    assert target_dates[0] == "2020-05-01" and target_dates[-1] == "2020-06-01"  # June 1: not matured

    lines = {line.get_label(): line for line in forecast_figure(data).axes[0].get_lines()}
    assert set(lines) == {"actual close", "lstm forecast", "naive forecast"}
    for model in ("lstm", "naive"):
        line = lines[f"{model} forecast"]
        xs = [num2date(x).date().isoformat() for x in line.get_xdata(orig=False)]
        expected = {str(d): v for d, m, v in stored if m == model}
        assert dict(zip(xs, line.get_ydata(), strict=True)) == expected
    actual = lines["actual close"]
    by_key = {str(k): v for k, v in closes.items()}
    assert list(actual.get_ydata()[:-1]) == [by_key[d] for d in target_dates[:-1]]
    assert np.isnan(actual.get_ydata()[-1])  # no close for the pending forecast yet

    full = rows(
        backfilled,
        "SELECT model, window_days, date, rmse FROM rolling_metrics WHERE ticker = 'TSLA' "
        "AND n = window_days ORDER BY date",
    )
    plotted = {line.get_label(): line for line in rolling_figure(data).axes[0].get_lines()}
    assert set(plotted) == {f"{m}, {w}-session RMSE" for m in ("lstm", "naive") for w in (3, 5)}
    for (model, window), line in [
        ((m, w), plotted[f"{m}, {w}-session RMSE"]) for m in ("lstm", "naive") for w in (3, 5)
    ]:
        expected_rmse = [r for m, w, _, r in full if (m, w) == (model, window)]
        assert list(line.get_ydata()) == expected_rmse and len(expected_rmse) == 20 - window + 1
    ratios = {line.get_label(): line for line in rolling_figure(data).axes[1].get_lines()}
    assert set(ratios) == {"3-session ratio", "5-session ratio", "naive (1)"}
    for window in (3, 5):
        lstm, naive = ([r for m, w, _, r in full if (m, w) == (model, window)] for model in ("lstm", "naive"))
        assert list(ratios[f"{window}-session ratio"].get_ydata()) == pytest.approx(
            [a / b for a, b in zip(lstm, naive, strict=True)]
        )

    errors = error_figure(data).axes[0]
    counts = [sum(p.get_height() for p in c.patches) for c in errors.containers]
    assert counts == [20, 20]
    matured = {
        m: sorted(e for (e,) in rows(backfilled, f"SELECT error FROM prediction_errors WHERE model = '{m}'"))
        for m in ("lstm", "naive")
    }
    for model in ("lstm", "naive"):
        assert sorted(data.errors[model]) == pytest.approx(matured[model], abs=1e-9)


def test_missing_ticker_or_empty_range_is_one_line_naming_it(
    backfilled: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    capsys.readouterr()
    assert main(["report", "--database-url", backfilled, "--tickers", "TSLA,AAPL", "--out", str(out)]) == 1
    assert capsys.readouterr().err == "error: AAPL: no predictions stored\n"
    assert not out.exists()  # checked before anything is written
    assert report(backfilled, out, "--start", "2019-01-02", "--end", "2019-01-31") == 1
    assert capsys.readouterr().err == (
        "error: TSLA: no predictions stored with a target session in 2019-01-02..2019-01-31\n"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--start", "2020-02-30"], "error: --start: '2020-02-30' is not a date (expected YYYY-MM-DD)\n"),
        (["--end", "May 1"], "error: --end: 'May 1' is not a date (expected YYYY-MM-DD)\n"),
        (
            ["--start", "2020-05-02", "--end", "2020-05-01"],
            "error: --end 2020-05-01 is before --start 2020-05-02\n",
        ),
    ],
)
def test_bad_dates_name_the_option(
    migrated_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    assert report(migrated_url, tmp_path / "report", *args) == 2  # an option's value: a usage error
    assert capsys.readouterr().err == expected
