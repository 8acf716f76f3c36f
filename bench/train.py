"""Training speed and one-step accuracy: the tutorial's `seed` preset against the default.

    python bench/train.py [--csv PATH]

Uses the tutorial's 80/20 split (test part = last 20% of sessions; for the bundled TSLA
sample 2018-07-26..2020-07-31). Both presets train on the training part only; each test
forecast uses closes up to the previous session (walk-forward with the model frozen, one
batched `forecast_many`). Prints wall times, RMSEs next to naive, and a last line
`speedup_vs_seed=<x> rmse_ratio_vs_naive=<r> seed_rmse_ratio_vs_naive=<s>`.
Keras' `fit` stalls about 5 s in some runs, so the seed time comes in steps: compare
medians over several runs.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = ROOT / "job" / "data" / "TSLA.csv"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    from job.forecast.model import train
    from job.forecast.model.network import load_keras
    from job.forecast.params import ModelParams
    from job.forecast.scores import rmse
    from job.ingest.sources import CsvSource

    load_keras()  # imports TensorFlow now, so neither timing below includes the import
    import_s = time.perf_counter() - started

    frame = CsvSource(args.csv).fetch(args.csv.stem.upper(), date(1900, 1, 1), date.today())
    dates, closes = [str(d) for d in frame["date"]], frame["close"].to_numpy()
    n_train = math.ceil(len(closes) * 0.8)  # the tutorial's training_data_len
    if n_train < 200 or len(closes) - n_train < 2:
        print(f"{args.csv}: too few sessions ({len(closes)})", file=sys.stderr)
        return 1
    targets = np.arange(n_train, len(closes))
    as_of = targets - 1
    actual = closes[targets]
    naive = rmse(closes[as_of], actual)
    print(
        f"data: {args.csv.name} {len(closes)} sessions, train {dates[0]}..{dates[n_train - 1]}, "
        f"test {dates[n_train]}..{dates[-1]} ({len(targets)} sessions)"
    )
    print(f"tensorflow import: {import_s:.2f} s")
    print(f"naive: rmse={naive:.4f}")

    results = {}
    for name, params in (("default", ModelParams()), ("seed", ModelParams(preset="seed"))):
        t0 = time.perf_counter()
        fit = train(closes[:n_train], params)
        seconds = time.perf_counter() - t0
        predicted = fit.forecaster.forecast_many(closes, as_of)
        error = rmse(predicted, actual)
        results[name] = (seconds, error)
        extra = f" shrink={fit.forecaster.shrink:.4f}" if name == "default" else ""
        print(
            f"{name}: train {seconds:.2f} s, epochs={fit.epochs}, samples={fit.n_samples}, "
            f"rmse={error:.4f}, ratio_vs_naive={error / naive:.4f}{extra}"
        )

    t0 = time.perf_counter()
    train(closes[:n_train], ModelParams())
    warm = time.perf_counter() - t0
    print(f"default (warm: network built and traced by the first retrain): train {warm:.2f} s")
    print(f"speedup of a warm retrain (the nightly/backfill case): {results['seed'][0] / warm:.1f}")

    speedup = results["seed"][0] / results["default"][0]  # first retrain of the process, trace included
    print(
        f"speedup_vs_seed={speedup:.1f} rmse_ratio_vs_naive={results['default'][1] / naive:.4f} "
        f"seed_rmse_ratio_vs_naive={results['seed'][1] / naive:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
