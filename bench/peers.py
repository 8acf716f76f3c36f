"""nightcast's backfill against NeuralForecast's walk-forward with the same network.

    python bench/peers.py [--csv PATH] [--sessions 250] [--rounds 3]

Needs the peers extra (`pip install torch==2.13.0`, a CPU build, then `pip install -e ".[peers]"`).

Both walk the last `--sessions` sessions of one series forecasting the next close, retraining
every 20 sessions on the 750 sessions before, with the same network: LSTM(50) -> LSTM(50) ->
Dense(25) -> Dense(1) on windows of 10 standardized log returns, batch 64, Adam, early
stopping (patience 3 validation checks, one check an epoch, at most 20 epochs):

- nightcast: `nightcast backfill` over those sessions in a fresh process on a fresh SQLite
  database (13 retrains, a fine-tune on every other session, every row persisted);
- NeuralForecast: `NeuralForecast.cross_validation(n_windows=sessions, refit=20)` in a fresh
  process (each refit continues from the last one's weights), the point forecast only.

Each is timed as a whole process (imports included: what a user waits for), the two
alternating for `--rounds` rounds on a quiet machine. Prints each round, then a last line
`nightcast_s=<median> neuralforecast_s=<median> ratio=<nightcast/neuralforecast>`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = ROOT.parent / "shared" / "data" / "dev" / "ORCL.csv"
RETRAIN_EVERY, TRAIN_SESSIONS, WINDOW = 20, 750, 10
EPOCH_STEPS = round(TRAIN_SESSIONS * 0.8 / 64)  # batches in one nightcast epoch


def neuralforecast_walk(csv: Path, sessions: int) -> int:
    """The peer's walk, in this process: returns the forecasts it made."""
    import logging

    import numpy as np
    import pandas as pd

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    from neuralforecast import NeuralForecast
    from neuralforecast.losses.pytorch import MSE
    from neuralforecast.models import LSTM

    frame = pd.read_csv(csv, parse_dates=["Date"])
    returns = np.log(frame["Close"]).diff().dropna()
    dates = frame["Date"].iloc[1:]
    keep = slice(-(sessions + TRAIN_SESSIONS), None)
    df = pd.DataFrame(
        {"unique_id": csv.stem, "ds": dates.iloc[keep].to_numpy(), "y": returns.iloc[keep].to_numpy()}
    )
    model = LSTM(
        h=1,
        input_size=WINDOW,
        encoder_n_layers=2,
        encoder_hidden_size=50,
        decoder_hidden_size=25,
        decoder_layers=2,
        loss=MSE(),
        scaler_type="standard",
        batch_size=1,
        windows_batch_size=64,
        max_steps=20 * EPOCH_STEPS,
        val_check_steps=EPOCH_STEPS,
        early_stop_patience_steps=3,
        random_seed=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        accelerator="cpu",
        devices=1,
    )
    walk = NeuralForecast(models=[model], freq=1).cross_validation(
        df.assign(ds=np.arange(len(df))),
        n_windows=sessions,
        step_size=1,
        val_size=round(TRAIN_SESSIONS * 0.2),
        refit=RETRAIN_EVERY,
    )
    return len(walk)


def nightcast_walk(csv: Path, sessions: int, tmp: Path) -> float:
    """Seconds for `nightcast backfill` over the last `sessions` sessions, fresh database."""
    from datetime import date

    from job.ingest.sources import CsvSource

    ticker = csv.stem.upper()
    dates = CsvSource(csv).fetch(ticker, date(1900, 1, 1), date.today())["date"]
    db = tmp / f"walk-{time.monotonic_ns()}.db"
    env = {**os.environ, "NIGHTCAST_DATABASE_URL": f"sqlite:///{db}"}
    env["NIGHTCAST_HISTORY_START"] = str(dates.iat[0])
    cli = [sys.executable, "-m", "job"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True)
    backfill = [*cli, "backfill", "--source", "csv", "--csv", str(csv), "--tickers", ticker]
    return _timed([*backfill, "--start", str(dates.iat[-sessions])], env)


def _timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed:\n{done.stdout}{done.stderr}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--sessions", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peer-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer_only:
        print(neuralforecast_walk(args.csv, args.sessions))
        return 0

    peer = [sys.executable, __file__, "--peer-only", "--csv", str(args.csv), "--sessions", str(args.sessions)]
    times: dict[str, list[float]] = {"nightcast": [], "neuralforecast": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            times["nightcast"].append(nightcast_walk(args.csv, args.sessions, Path(tmp)))
            times["neuralforecast"].append(_timed(peer))
            print(
                f"round {round_ + 1}: nightcast {times['nightcast'][-1]:.1f} s, "
                f"neuralforecast {times['neuralforecast'][-1]:.1f} s",
                flush=True,
            )
    ours, theirs = (statistics.median(times[name]) for name in ("nightcast", "neuralforecast"))
    print(f"{args.csv.stem}, last {args.sessions} sessions, retrain every {RETRAIN_EVERY}, whole processes")
    print(f"nightcast_s={ours:.2f} neuralforecast_s={theirs:.2f} ratio={ours / theirs:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
