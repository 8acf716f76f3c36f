"""Where the compute stage runs makes no difference to the rows: in-process, `--workers 2`, and
an existing Dask cluster (scheduler + 2 workers, started here) store the same predictions
and model versions; a worker lost mid-task is replaced and the rows are still the same."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from job.db import get_engine
from job.ingest.sources import make_source
from job.pipeline import Cycle
from tests.conftest import SAMPLE_CSV, tiny_settings

START, END = date(2020, 3, 2), date(2020, 5, 29)  # 64 as-of sessions: chunks of 20 on a cluster
TICKERS = ["AAA", "BBB", "CCC"]

VERSIONS = (
    "SELECT v.ticker, v.kind, v.trained_from, v.trained_through, v.n_samples, v.epochs, v.train_loss,"
    " v.val_loss, v.artifact_sha256, p.trained_through FROM model_versions v"
    " LEFT JOIN model_versions p ON p.id = v.parent_id ORDER BY v.ticker, v.trained_through, v.kind"
)
PREDICTIONS = (
    "SELECT p.ticker, p.target_date, p.model, p.as_of_date, p.predicted_close, p.lower_80, p.upper_80,"
    " p.lower_95, p.upper_95, v.trained_through FROM predictions p"
    " LEFT JOIN model_versions v ON v.id = p.model_version_id ORDER BY p.ticker, p.target_date, p.model"
)
METRICS = "SELECT * FROM rolling_metrics ORDER BY ticker, date, model, window_days"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three different real-shaped series: the TSLA sample and two re-walked copies of it."""
    path = tmp_path_factory.mktemp("series")
    frame = pd.read_csv(SAMPLE_CSV)
    for i, ticker in enumerate(TICKERS):
        walk = np.exp(np.cumsum(np.random.default_rng(i).normal(0, 0.01 * i, len(frame))))
        copy = frame.copy()
        for column in ("Open", "High", "Low", "Close", "Adj Close"):
            copy[column] = frame[column] * walk
        copy.to_csv(path / f"{ticker}.csv", index=False)
    return path


def backfill(url: str, folder: Path, **settings: object) -> None:
    cycle = Cycle(tiny_settings(url, source="csv", csv_path=folder, **settings), make_source("csv", folder))
    report = cycle.backfill(TICKERS, start=START, as_of=END)
    assert report.status == "succeeded", [t.error for t in report.tickers]


def rows(url: str) -> tuple[list[tuple], ...]:
    """The stored rows with surrogate ids replaced by what they point at: ids are numbered in
    the order results arrive, which is not fixed when tickers run in parallel."""
    with get_engine(url).connect() as conn:
        return tuple(
            [tuple(r) for r in conn.execute(sa.text(sql))] for sql in (VERSIONS, PREDICTIONS, METRICS)
        )


@pytest.mark.slow
def test_in_process_local_workers_and_a_cluster_store_the_same_rows(
    migrated_url: str, make_db, folder: Path
) -> None:
    from distributed import LocalCluster

    backfill(migrated_url, folder)
    reference = rows(migrated_url)
    assert len(reference[1]) == 2 * 3 * 64 and len(reference[0]) == 3 * 64

    local = make_db()
    backfill(local, folder, workers=2)
    assert rows(local) == reference

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = make_db()
        backfill(remote, folder, dask_address=cluster.scheduler_address)
        assert rows(remote) == reference


@pytest.mark.slow
def test_a_worker_lost_mid_task_is_replaced_and_the_rows_stay_the_same(
    migrated_url: str, make_db, folder: Path
) -> None:
    from distributed import Client, LocalCluster

    reference = make_db()
    backfill(reference, folder)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(2)

        def kill_a_busy_worker() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                busy = [w for w, tasks in client.processing().items() if tasks]
                if busy:
                    pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                    os.kill(pid, signal.SIGKILL)  # the nanny starts a new worker
                    killed.append(pid)
                    return
                time.sleep(0.05)

        killed: list[int] = []
        killer = threading.Thread(target=kill_a_busy_worker)
        killer.start()
        backfill(migrated_url, folder, dask_address=cluster.scheduler_address)
        killer.join()
    assert killed, "no worker was busy to be killed"
    assert rows(migrated_url) == rows(reference)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [None, 2], ids=["in-process", "workers"])
def test_a_ticker_that_fails_to_store_is_cancelled_and_the_others_complete(
    migrated_url: str, folder: Path, monkeypatch: pytest.MonkeyPatch, workers: int | None
) -> None:
    """Its later sessions are not stored after the hole, nor (in-process) computed for
    nothing; the other tickers finish."""
    from job import executors, pipeline

    calls: dict[str, int] = {}
    computed: list[str] = []
    save, replay = pipeline.save_steps, executors.replay

    def fail_bbb_second(claims: object, ticker: str, *args: object, **kwargs: object) -> list[int]:
        calls[ticker] = calls.get(ticker, 0) + 1
        if ticker == "BBB" and calls[ticker] == 2:
            raise RuntimeError("disk full")
        return save(claims, ticker, *args, **kwargs)  # type: ignore[arg-type]

    def counted(task, state=None):  # type: ignore[no-untyped-def]
        for step, after in replay(task, state):
            computed.append(task.ticker)
            yield step, after

    monkeypatch.setattr(pipeline, "save_steps", fail_bbb_second)
    monkeypatch.setattr(executors, "replay", counted)
    settings = tiny_settings(migrated_url, source="csv", csv_path=folder, workers=workers)
    cycle = Cycle(settings, make_source("csv", folder))
    report = cycle.backfill(TICKERS, start=START, as_of=END)
    by_ticker = {t.ticker: t for t in report.tickers}
    assert by_ticker["BBB"].status == "failed" and "disk full" in (by_ticker["BBB"].error or "")
    assert by_ticker["AAA"].status == by_ticker["CCC"].status == "ok"
    first_call = 1 if workers is None else executors.CHUNK_SESSIONS  # sessions stored by call 1
    with get_engine(migrated_url).connect() as conn:
        query = "SELECT ticker, COUNT(*) FROM predictions WHERE model = 'naive' GROUP BY 1"
        stored = dict(conn.execute(sa.text(query)).all())
    assert stored == {"AAA": 64, "BBB": first_call, "CCC": 64}
    if workers is None:
        assert computed.count("BBB") == 2 and computed.count("AAA") == 64
