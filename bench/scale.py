"""Backfill throughput on 1 and 2 Dask workers, and the nightly cost per ticker.

    python bench/scale.py [--data DIR] [--tickers 8] [--sessions 125] [--rounds 3]

Takes the first `--tickers` series of the folder (default: the development series) that end
on the same date, and backfills their last `--sessions` sessions (all but the very last) on
a fresh SQLite database each time:

- on a running cluster of 1 and of 2 worker processes (`--dask-address`), the compute
  stage already imported in the workers: what the work itself costs, the scaling figure; 1 and 2
  workers alternate for `--rounds` rounds and the medians count, since a shared machine's
  speed drifts by a third from one minute to the next;
- with `nightcast backfill --workers 1|2` in a fresh process: what a user waits for from a
  cold start (process and cluster start included), alternating for `--rounds` rounds too.

Checks that every run stored the same rows, then times one nightly `nightcast run`
(in-process) for the last session of all tickers. Last line: `workers1_s= workers2_s=
efficiency= sessions_per_s= cold_efficiency= identical=`, efficiency = workers1_s / (2 x
workers2_s) on the running clusters, cold_efficiency the same from the command line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "dev"
ROWS = (
    "SELECT p.ticker, p.target_date, p.model, p.predicted_close, p.lower_80, p.upper_80, p.lower_95,"
    " p.upper_95, p.network_close, v.kind, v.trained_through, v.artifact_sha256 FROM predictions p"
    " LEFT JOIN model_versions v ON v.id = p.model_version_id ORDER BY 1, 2, 3"
)


def _same_range(files: list[Path]) -> list[Path]:
    """The series that end on the most common last date: one backfill range fits them all."""
    last = {f: f.read_text().rstrip().rsplit("\n", 1)[-1].split(",", 1)[0] for f in files}
    common = max(set(last.values()), key=list(last.values()).count)
    return [f for f in files if last[f] == common]


def nightcast(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "job", *args], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"nightcast {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEV)
    parser.add_argument("--tickers", type=int, default=8)
    parser.add_argument("--sessions", type=int, default=125)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    import sqlalchemy as sa
    from distributed import Client, LocalCluster

    from job.config import load_settings
    from job.db import get_engine
    from job.db.migrate import upgrade_to_head
    from job.executors import _warm_up
    from job.ingest.sources import CsvSource, source_for
    from job.pipeline import Cycle

    files = _same_range(sorted(args.data.glob("*.csv")))[: args.tickers]
    tickers = [f.stem.upper() for f in files]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "csv"
        folder.mkdir()
        for f in files:
            shutil.copy(f, folder / f.name)
        dates = CsvSource(folder).fetch(tickers[0], dt.date(1990, 1, 1), dt.date.today())["date"]
        start, end, last = dates.iat[-args.sessions - 1], dates.iat[-2], dates.iat[-1]
        common = {
            "source": "csv",
            "csv_path": folder,
            "tickers": ",".join(tickers),
            "history_start": "1990-01-01",
        }
        seconds: dict[int, list[float]] = {1: [], 2: []}
        stored: dict[str, list[tuple]] = {}
        for round_, workers in ((r, w) for r in range(args.rounds) for w in (1, 2)):
            with (
                LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster,
                Client(cluster) as client,
            ):
                client.run(_warm_up)
                url = f"sqlite:///{tmp}/warm{workers}-{round_}.db"
                upgrade_to_head(url)
                settings = load_settings(database_url=url, dask_address=cluster.scheduler_address, **common)
                started = time.perf_counter()
                report = Cycle(settings, source_for(settings)).backfill(tickers, start=start, as_of=end)
                seconds[workers].append(time.perf_counter() - started)
                assert report.status == "succeeded", [t.error for t in report.tickers]
            with get_engine(url).connect() as conn:
                stored[f"warm{workers}-{round_}"] = [tuple(r) for r in conn.execute(sa.text(ROWS))]
        cold_runs: dict[int, list[float]] = {1: [], 2: []}
        for round_, workers in ((r, w) for r in range(args.rounds) for w in (1, 2)):
            url = f"sqlite:///{tmp}/cold{workers}-{round_}.db"
            env = {**os.environ, "NIGHTCAST_DATABASE_URL": url, "NIGHTCAST_HISTORY_START": "1990-01-01"}
            nightcast(env, "migrate")
            cli = ["--source", "csv", "--csv", str(folder), "--tickers", ",".join(tickers)]
            cold_runs[workers].append(nightcast(
                env, "backfill", *cli, "--start", str(start), "--end", str(end), "--workers", str(workers)
            ))  # fmt: skip
            with get_engine(url).connect() as conn:
                stored[f"cold{workers}-{round_}"] = [tuple(r) for r in conn.execute(sa.text(ROWS))]
        cold = {w: statistics.median(times) for w, times in cold_runs.items()}
        nightly = nightcast(env, "run", *cli, "--as-of", str(last))
    reference = stored["warm1-0"]
    identical = all(rows == reference for rows in stored.values())
    sessions = sum(1 for r in reference if r[2] == "naive")
    warm = {w: statistics.median(times) for w, times in seconds.items()}
    efficiency = warm[1] / (2 * warm[2])
    print(f"{len(tickers)} tickers ({','.join(tickers)}), {sessions} as-of sessions {start}..{end}")
    for w in (1, 2):
        rounds = ", ".join(f"{t:.1f}" for t in seconds[w])
        print(
            f"running cluster, {w} worker(s): median {warm[w]:.1f} s of {rounds}   (ingest, training, writes)"
        )
    for w in (1, 2):
        rounds = ", ".join(f"{t:.1f}" for t in cold_runs[w])
        print(f"cold `backfill --workers {w}`: median {cold[w]:.1f} s of {rounds}   (process, cluster start)")
    print(f"cold efficiency {cold[1] / (2 * cold[2]):.3f}")
    print(f"nightly `run` of {len(tickers)} tickers for {last}, in-process: {nightly:.1f} s, "
          f"{nightly / len(tickers):.2f} s per ticker (process start included)")  # fmt: skip
    print(
        f"workers1_s={warm[1]:.2f} workers2_s={warm[2]:.2f} efficiency={efficiency:.3f} "
        f"sessions_per_s={sessions / warm[2]:.1f} cold_efficiency={cold[1] / (2 * cold[2]):.3f} "
        f"identical={identical}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
