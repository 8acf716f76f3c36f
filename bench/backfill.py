"""Backfill speed against one tutorial-style (`seed` preset) training on the same data.

    python bench/backfill.py [--csv PATH] [--sessions 500]

Runs `nightcast migrate` and `nightcast backfill` over the last `--sessions` sessions of the
CSV in a fresh process on a temporary SQLite database, timing the whole process (Python and
TensorFlow imports included). Then, in this process, trains the `seed` preset once on the
sessions before the backfill's start. Prints both, the backfill's RMSE next to naive, and a
last line `backfill_s=<b> seed_train_s=<t> ratio=<b/t> sessions_per_s=<n> rmse_ratio_vs_naive=<r>`.
Keras' `fit` stalls about 5 s in some runs, so the seed time comes in steps: compare
medians over several runs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = ROOT / "job" / "data" / "TSLA.csv"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--sessions", type=int, default=500)
    args = parser.parse_args(argv)

    from job.ingest.sources import CsvSource

    ticker = args.csv.stem.upper()
    frame = CsvSource(args.csv).fetch(ticker, date(1900, 1, 1), date.today())
    if len(frame) <= args.sessions + 100:
        print(f"{args.csv}: {len(frame)} sessions, too few for --sessions {args.sessions}", file=sys.stderr)
        return 1
    start = frame["date"].iloc[-args.sessions]
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "NIGHTCAST_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "NIGHTCAST_HISTORY_START": str(frame["date"].iloc[0]),
        }
        cli = [sys.executable, "-m", "job"]
        subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True)
        command = [
            *cli,
            "backfill",
            "--source",
            "csv",
            "--csv",
            str(args.csv),
            "--tickers",
            ticker,
            "--start",
            str(start),
        ]
        t0 = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        backfill_s = time.perf_counter() - t0
        if done.returncode != 0:
            print(done.stdout, done.stderr, file=sys.stderr)
            return 1
        print(done.stdout.rstrip())

        import sqlalchemy as sa

        from job.db import get_engine, predictions
        from job.forecast.evaluate import summarize

        engine = get_engine(env["NIGHTCAST_DATABASE_URL"])
        with engine.connect() as conn:
            summary = summarize(conn, ticker, start, frame["date"].iloc[-1])
            replayed = conn.execute(
                sa.select(sa.func.count()).select_from(predictions).where(predictions.c.model == "lstm")
            ).scalar_one()
        engine.dispose()
    assert summary is not None

    from job.forecast.model import train
    from job.forecast.params import ModelParams

    closes = frame.loc[frame["date"] < start, "close"].to_numpy()
    train(closes[-200:], ModelParams())  # import TensorFlow and build once: time training alone
    t0 = time.perf_counter()
    train(closes, ModelParams(preset="seed"))
    seed_s = time.perf_counter() - t0

    print(f"backfill: {replayed} sessions in {backfill_s:.2f} s (fresh process, imports included)")
    print(f"seed preset: one training on {len(closes)} sessions in {seed_s:.2f} s")
    print(
        f"rmse lstm {summary.lstm['rmse']:.4f}, naive {summary.naive['rmse']:.4f} "
        f"over {summary.sessions} sessions"
    )
    print(
        f"backfill_s={backfill_s:.2f} seed_train_s={seed_s:.2f} ratio={backfill_s / seed_s:.3f} "
        f"sessions_per_s={replayed / backfill_s:.1f} rmse_ratio_vs_naive={summary.rmse_ratio:.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
