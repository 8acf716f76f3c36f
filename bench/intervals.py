"""Walk-forward over the development series: intervals, skill and the guard, across tickers.

    python bench/intervals.py [--data DIR] [--sessions 250] [--workers 2] [--tickers A,B]

For each `TICKER.csv` in the folder (default: the 25 development series), replays its last
`--sessions` as-of sessions through the compute stage itself (job.compute, the default
model and policy, no database), on `--workers` Dask worker processes. Prints per ticker the
RMSE ratio to naive of the network alone and of the stored (guarded) LSTM forecast, the
share of sessions where the LSTM forecast moved off the last close, the Diebold-Mariano
p-value, the coverage of both models' 80% and 95%
intervals and the ratio of their 95% Winkler scores, then a last line
`coverage_80= coverage_95= winkler95_ratio_vs_naive= rmse_ratio_mean= rmse_ratio_worst=`
(coverage: the LSTM's, mean over tickers; ratios: mean, and worst, over tickers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from job.forecasts import LEVELS, MODELS, bounds
from job.compute import Task

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "dev"


def tasks(folder: Path, tickers: list[str], sessions: int) -> Iterator[Task]:
    from job.calendar import get_sessions
    from job.compute import State, Task
    from job.config import ModelParams, RetrainPolicy
    from job.sources import CsvSource

    calendar = get_sessions("XNYS")
    for ticker in tickers:
        frame = CsvSource(folder).fetch(ticker, calendar.first, dt.date.today())
        dates = np.array(frame["date"].tolist(), "datetime64[D]")
        as_of = dates[-sessions - 1 : -1]  # every forecast matures inside the file
        targets = np.array([calendar.next_session(d.astype(dt.date)) for d in as_of], "datetime64[D]")
        yield Task(
            ticker, dates, frame["close"].to_numpy(), as_of, targets, State(), ModelParams(), RetrainPolicy()
        )


def score(ticker: str, closes: dict[np.datetime64, float], steps: list) -> dict[str, float]:
    from job import scores

    matured = [s for s in steps if np.datetime64(s.target) in closes]
    actual = np.array([closes[np.datetime64(s.target)] for s in matured])

    def made(model: str, column: str) -> np.ndarray:
        return np.array([getattr(s.forecasts[model], column) for s in matured])

    row: dict[str, float] = {"sessions": len(matured)}
    for model in MODELS:
        row[f"{model}_rmse"] = scores.rmse(made(model, "predicted_close"), actual)
        for level in LEVELS:
            lower, upper = (made(model, name) for name in bounds(level))
            row[f"{model}_c{level}"] = scores.coverage(lower, upper, actual)
        row[f"{model}_w95"] = scores.winkler(*(made(model, name) for name in bounds(95)), actual, 0.05)
    lstm, naive = made("lstm", "predicted_close"), made("naive", "predicted_close")
    row["ratio"] = row["lstm_rmse"] / row["naive_rmse"]
    row["network_ratio"] = scores.rmse(made("lstm", "network_close"), actual) / row["naive_rmse"]
    row["winkler_ratio"] = row["lstm_w95"] / row["naive_w95"]
    row["dm"] = scores.dm_pvalue(lstm - actual, naive - actual) or float("nan")
    row["moved"] = float(np.mean(lstm != naive))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEV)
    parser.add_argument("--sessions", type=int, default=250)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tickers", default="")
    args = parser.parse_args(argv)

    from job.executors import DaskExecutor, InProcess

    tickers = (
        args.tickers.split(",") if args.tickers else sorted(p.stem.upper() for p in args.data.glob("*.csv"))
    )
    if not tickers:
        print(f"{args.data}: no CSV files", file=sys.stderr)
        return 1
    started = time.perf_counter()
    steps: dict[str, list] = {t: [] for t in tickers}
    closes: dict[str, dict[np.datetime64, float]] = {}
    work = list(tasks(args.data, tickers, args.sessions))
    for task in work:
        closes[task.ticker] = dict(zip(task.dates, task.closes, strict=True))
    with DaskExecutor(workers=args.workers) if args.workers > 0 else InProcess() as executor:
        for result in executor.run(work):
            if result.error is not None:
                print(f"{result.task.ticker}: {result.error}", file=sys.stderr)
                return 1
            steps[result.task.ticker] += result.steps
    rows = {t: score(t, closes[t], steps[t]) for t in tickers}
    print(f"{'ticker':8} {'n':>4} {'network':>8} {'ratio':>7} {'DM p':>6} {'moved':>6} {'lstm c80':>9} "
          f"{'c95':>6} {'naive c80':>10} {'c95':>6} {'W95 ratio':>10}")  # fmt: skip
    for t, r in rows.items():
        print(
            f"{t:8} {r['sessions']:4.0f} {r['network_ratio']:8.4f} {r['ratio']:7.4f} {r['dm']:6.3f} "
            f"{r['moved']:6.1%} {r['lstm_c80']:9.1%} {r['lstm_c95']:6.1%} {r['naive_c80']:10.1%} "
            f"{r['naive_c95']:6.1%} {r['winkler_ratio']:10.4f}"
        )
    c80 = [r["lstm_c80"] for r in rows.values()]
    c95 = [r["lstm_c95"] for r in rows.values()]
    print(
        f"{len(rows)} tickers x {args.sessions} sessions in {time.perf_counter() - started:.0f} s; "
        f"LSTM coverage per ticker 80%: {min(c80):.1%}..{max(c80):.1%}, 95%: {min(c95):.1%}..{max(c95):.1%}"
    )
    ratios = [r["ratio"] for r in rows.values()]
    print(
        f"coverage_80={np.mean(c80):.4f} coverage_95={np.mean(c95):.4f} "
        f"winkler95_ratio_vs_naive={np.mean([r['winkler_ratio'] for r in rows.values()]):.4f} "
        f"rmse_ratio_mean={np.mean(ratios):.4f} rmse_ratio_worst={max(ratios):.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
