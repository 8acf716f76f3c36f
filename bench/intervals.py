"""Walk-forward over the development series: intervals, skill and the guard, across tickers.

    python bench/intervals.py [--data DIR] [--sessions 250] [--workers 2] [--tickers A,B]

For each `TICKER.csv` in the folder (default: the 25 development series), replays its last
`--sessions` as-of sessions through the compute stage itself (job.forecast.compute, the default
model and policy, no database), on `--workers` Dask worker processes. Prints per ticker the
RMSE ratio to naive of the network alone and of the stored (guarded) LSTM forecast, the
share of sessions where the LSTM forecast moved off the last close, the Diebold-Mariano
p-value, the coverage of both models' 80% and 95%
intervals and the ratio of their 95% Winkler scores, then a last line
`coverage_80= coverage_95= winkler95_ratio_vs_naive= rmse_ratio_mean= rmse_ratio_worst=`
(coverage: the LSTM's, mean over tickers; ratios: mean, and worst, over tickers).

With `--garch` (needs the bench extra: `pip install -e ".[bench]"`, for `arch`), the peer:
GARCH(1,1) with zero mean on percent log returns, normal and Student-t, refit every session
on the last `GARCH_RETURNS` returns up to the as-of session only; its interval for the next
close is close x exp(quantile x sigma). Per ticker it prints nightcast's Winkler score at 80%
and 95% as a ratio to the better GARCH (the lower of normal and Student-t, per level) and
GARCH's coverage, then a line `garch_w80_ratio= garch_w95_ratio= below_1_w80= below_1_w95=`.
It also prints the share of sessions whose intervals the network's own scale set, and how
each source of scale does alone: naive intervals scaled by the network's stored scale, or by
the HAR baseline, conformal on the walk's own earlier scores, as Winkler ratios to GARCH
after the first ALONE_WARMUP sessions (last line `network_alone_w80= ... network_scale_share=`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from job.forecast.entries import model_names
from job.forecast.models import LEVELS, bounds

if TYPE_CHECKING:
    from job.forecast.compute import Task
    from job.forecast.model.features import OHLCV

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "dev"


def tasks(folder: Path, tickers: list[str], sessions: int) -> Iterator[Task]:
    from job.forecast.compute import State, Task
    from job.forecast.model.features import OHLCV
    from job.forecast.params import ModelParams, RetrainPolicy
    from job.ingest.sources import CsvSource
    from job.support.calendar import get_sessions

    calendar = get_sessions("XNYS")
    for ticker in tickers:
        frame = CsvSource(folder).fetch(ticker, calendar.first, dt.date.today())
        dates = np.array(frame["date"].tolist(), "datetime64[D]")
        as_of = dates[-sessions - 1 : -1]  # every forecast matures inside the file
        targets = np.array([calendar.next_session(d.astype(dt.date)) for d in as_of], "datetime64[D]")
        bars = OHLCV(*(frame[c].to_numpy(dtype=float) for c in ("close", "open", "high", "low", "volume")))
        yield Task(
            ticker, dates, bars.close, as_of, targets, State(), ModelParams(), RetrainPolicy(), bars=bars
        )


GARCH_RETURNS = 1500


def garch_intervals(closes: np.ndarray, positions: np.ndarray) -> dict[str, dict[int, np.ndarray]]:
    """Per distribution ("normal", "t") and level, (n, 2) bounds of the next close for each
    as-of position, each fitted on returns up to that position only."""
    from arch import arch_model

    returns = 100 * np.diff(np.log(closes))
    out: dict[str, dict[int, np.ndarray]] = {
        d: {lv: np.empty((len(positions), 2)) for lv in LEVELS} for d in ("normal", "t")
    }
    for dist in ("normal", "t"):
        start = None
        for row, j in enumerate(positions):
            window = returns[max(0, j - GARCH_RETURNS) : j]  # returns up to close j
            model = arch_model(window, mean="Zero", vol="GARCH", p=1, q=1, dist=dist, rescale=False)
            with warnings.catch_warnings():  # infeasible starting values: arch starts afresh
                warnings.simplefilter("ignore")
                fit = model.fit(disp="off", starting_values=start, show_warning=False)
            start = fit.params.to_numpy()
            sigma = float(np.sqrt(fit.forecast(horizon=1, reindex=False).variance.to_numpy()[-1, 0])) / 100
            shape = fit.params.to_numpy()[3:] if dist == "t" else None
            for level in LEVELS:
                tail = (1 - level / 100) / 2
                q = model.distribution.ppf([tail, 1 - tail], shape)
                out[dist][level][row] = closes[j] * np.exp(np.asarray(q) * sigma)
    return out


#: Sessions of a walk the one-scale intervals learn from before they are scored.
ALONE_WARMUP = 50


def alone(closes: np.ndarray, positions: np.ndarray, sigma: np.ndarray, level: int) -> np.ndarray:
    """(n, 2) naive intervals scaled by `sigma` (one per position) alone, conformal on the
    walk's own earlier scores with the product's rule (job.forecast.intervals.interval): how one
    source of scale does by itself, the network's or the baseline's."""
    from job.forecast import intervals

    out, misses = np.full((len(positions), 2), np.nan), []
    past = np.abs(np.log(closes[positions + 1] / closes[positions])) / sigma
    for i, j in enumerate(positions):
        bound = intervals.interval(closes[j], sigma[i], past[:i], np.array(misses), level / 100)
        if bound is not None:
            out[i] = bound
            misses.append(float(not bound[0] <= closes[j + 1] <= bound[1]))
    return out


def score_garch(bars: OHLCV, dates: np.ndarray, steps: list) -> dict[str, float]:
    """nightcast's Winkler scores as ratios to the better GARCH(1,1), per level, GARCH's
    coverage, and the ratios of one-scale intervals (the network's own scale, the baseline's)
    to GARCH after ALONE_WARMUP sessions."""
    from job.forecast import intervals, scores

    closes = bars.close
    index = {d: i for i, d in enumerate(dates)}
    matured = [s for s in steps if np.datetime64(s.target) in index]
    positions = np.array([index[np.datetime64(s.as_of)] for s in matured])
    actual = closes[positions + 1]
    peer = garch_intervals(closes, positions)
    sources = {
        "network": np.array([s.forecasts["naive"].network_scale for s in matured]),
        "baseline": intervals.baseline_scale(bars, positions),
    }
    row: dict[str, float] = {
        "network_share": float(np.mean([s.forecasts["naive"].scale_source == "network" for s in matured]))
    }
    later = slice(ALONE_WARMUP, None)
    for level in LEVELS:
        alpha = 1 - level / 100
        lower, upper = (np.array([getattr(s.forecasts["lstm"], b) for s in matured]) for b in bounds(level))
        ours = scores.winkler(lower, upper, actual, alpha)
        theirs = {d: scores.winkler(b[level][:, 0], b[level][:, 1], actual, alpha) for d, b in peer.items()}
        best = min(theirs, key=theirs.__getitem__)
        row[f"w{level}_ratio"] = ours / theirs[best]
        garch_later = min(
            scores.winkler(b[level][later, 0], b[level][later, 1], actual[later], alpha)
            for b in peer.values()
        )
        for name, sigma in sources.items():
            own = alone(closes, positions, sigma, level)[later]
            row[f"{name}_w{level}"] = scores.winkler(own[:, 0], own[:, 1], actual[later], alpha) / garch_later
        row[f"garch_c{level}"] = scores.coverage(peer[best][level][:, 0], peer[best][level][:, 1], actual)
        row[f"garch_dist{level}"] = 0.0 if best == "normal" else 1.0
    return row


def score(ticker: str, closes: dict[np.datetime64, float], steps: list) -> dict[str, float]:
    from job.forecast import scores

    matured = [s for s in steps if np.datetime64(s.target) in closes]
    actual = np.array([closes[np.datetime64(s.target)] for s in matured])

    def made(model: str, column: str) -> np.ndarray:
        return np.array([getattr(s.forecasts[model], column) for s in matured])

    row: dict[str, float] = {"sessions": len(matured)}
    for model in model_names():
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
    parser.add_argument("--garch", action="store_true", help="compare with GARCH(1,1) (needs arch)")
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
    if args.garch:
        print_garch(work, steps)
    return 0


def print_garch(work: list[Task], steps: dict[str, list]) -> None:
    try:
        import arch  # noqa: F401
    except ImportError:
        print('--garch needs arch: pip install -e ".[bench]"', file=sys.stderr)
        raise SystemExit(1) from None
    print(
        f"{'ticker':8} {'W80/GARCH':>10} {'W95/GARCH':>10} {'GARCH c80':>10} {'c95':>6} {'dist':>6} "
        f"{'net scale':>10} {'alone: net W80':>15} {'W95':>7} {'base W80':>9} {'W95':>7}"
    )
    rows = {}
    for task in work:
        r = rows[task.ticker] = score_garch(task.prices, task.dates, steps[task.ticker])
        dist = "/".join("t" if r[f"garch_dist{lv}"] else "normal" for lv in LEVELS)
        print(
            f"{task.ticker:8} {r['w80_ratio']:10.4f} {r['w95_ratio']:10.4f} {r['garch_c80']:10.1%} "
            f"{r['garch_c95']:6.1%} {dist:>6} {r['network_share']:10.1%} {r['network_w80']:15.4f} "
            f"{r['network_w95']:7.4f} {r['baseline_w80']:9.4f} {r['baseline_w95']:7.4f}"
        )
    w80, w95 = ([r[f"w{lv}_ratio"] for r in rows.values()] for lv in LEVELS)
    print(
        f"garch_w80_ratio={np.mean(w80):.4f} garch_w95_ratio={np.mean(w95):.4f} "
        f"below_1_w80={sum(w < 1 for w in w80)}/{len(w80)} below_1_w95={sum(w < 1 for w in w95)}/{len(w95)}"
    )
    alone_means = " ".join(
        f"{name}_alone_w{lv}={np.mean([r[f'{name}_w{lv}'] for r in rows.values()]):.4f}"
        for name in ("network", "baseline")
        for lv in LEVELS
    )
    share = np.mean([r["network_share"] for r in rows.values()])
    print(f"{alone_means} network_scale_share={share:.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
