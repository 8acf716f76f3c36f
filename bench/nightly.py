"""The nightly cost of one more ticker: `nightcast run` over few tickers against many.

    python bench/nightly.py [--data DIR] [--few 5] [--many 75] [--rounds 3]

Takes the development series that end on the same date, repeated under numbered names to
make `--many` tickers (each its own series to the job: its own model, rows and metrics).
Trains each ticker's model as of the next-to-last session (`nightcast train`), keeps that
database, then times a nightly `nightcast run` for the last session (ingest the new bar,
fine-tune, forecast, store, metrics) in a fresh process on a copy of it, for the first
`--few` tickers and for all `--many`, alternating for `--rounds` rounds. Process start and
imports cost both runs alike, so the difference is what each further ticker costs. Last line:
`few_s=<median> many_s=<median> marginal_ms_per_ticker=<(many - few) / (many - few tickers)>`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from scale import DEV, _same_range, nightcast  # noqa: E402  (a sibling script: its series, its timer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEV)
    parser.add_argument("--few", type=int, default=5)
    parser.add_argument("--many", type=int, default=75)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    files = _same_range(sorted(args.data.glob("*.csv")))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "csv"
        folder.mkdir()
        tickers = []
        for i in range(args.many):
            source = files[i % len(files)]
            tickers.append(f"{source.stem.upper()}{i // len(files)}")
            shutil.copy(source, folder / f"{tickers[-1]}.csv")
        lines = source.read_text().rstrip().splitlines()
        before, last = (line.split(",", 1)[0] for line in lines[-2:])
        trained = Path(tmp) / "trained.db"
        env = {**os.environ, "NIGHTCAST_HISTORY_START": "1990-01-01", "NIGHTCAST_SOURCE": "csv",
               "NIGHTCAST_CSV_PATH": str(folder)}  # fmt: skip
        base = {**env, "NIGHTCAST_DATABASE_URL": f"sqlite:///{trained}"}
        nightcast(base, "migrate")
        nightcast(base, "ingest", "--tickers", ",".join(tickers), "--end", before)
        nightcast(base, "train", "--tickers", ",".join(tickers), "--as-of", before)
        seconds: dict[int, list[float]] = {args.few: [], args.many: []}
        for round_ in range(args.rounds):
            for n in (args.few, args.many):
                db = Path(tmp) / f"night-{n}-{round_}.db"
                shutil.copy(trained, db)
                night = {**env, "NIGHTCAST_DATABASE_URL": f"sqlite:///{db}"}
                names = ",".join(tickers[:n])
                seconds[n].append(nightcast(night, "run", "--tickers", names, "--as-of", last))
            times = ", ".join(f"{n} tickers {s[-1]:.2f} s" for n, s in seconds.items())
            print(f"round {round_ + 1}: {times}", flush=True)
    few, many = (statistics.median(seconds[n]) for n in (args.few, args.many))
    marginal = (many - few) / (args.many - args.few) * 1000
    print(f"nightly `run` for {last}, medians: {args.few} tickers {few:.2f} s, {args.many}: {many:.2f} s")
    print(f"few_s={few:.2f} many_s={many:.2f} marginal_ms_per_ticker={marginal:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
