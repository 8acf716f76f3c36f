"""Where the compute stage runs: in this process (the default), or on Dask workers.

An executor takes tasks (job.forecast.compute.Task: arrays in, arrays out) and yields what they
produced, as it is produced, for the caller to persist. Workers never see the database: the
process that reads and writes the tables stays the only one connected to it.

- `InProcess`: one task after the other, one session at a time; Dask is never imported.
- `DaskExecutor`: a local cluster of N single-threaded worker processes (`--workers N`), or
  an existing cluster (`--dask-address`). Each ticker's sessions run in chunks, chunk k+1
  starting on a worker from the state chunk k ended with, so a ticker's results are
  persisted as each chunk finishes while different tickers run in parallel. A worker lost
  mid-task is retried by Dask on another worker; a task that keeps failing fails its
  ticker, whose finished chunks stay stored for a rerun to resume from.

Which executor ran makes no difference to the rows: a task's results depend only on the
task, and a chunked replay equals an unchunked one (tested).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from job.config import Settings
from job.forecast.compute import State, Step, Task, replay, replay_all

log = logging.getLogger(__name__)

#: Sessions per Dask task: a retrain period, so that a chunk costs about one training.
CHUNK_SESSIONS = 20
#: Tickers in flight per worker. A chunk's priority is the sessions its ticker has left:
#: the ticker with the most work left goes first (critical path), so the tickers in flight
#: finish together instead of one long chain running alone at the end while the other
#: workers idle, and no ticker starves behind newcomers.
SLOTS_PER_WORKER = 4


@dataclass
class Result:
    """Some of a ticker's sessions, in order, or the error that stopped the ticker."""

    task: Task
    steps: list[Step] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False  # no more results will come for this ticker


class Executor(Protocol):
    """What a cycle asks of wherever the compute stage runs."""

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...

    def run(self, tasks: Iterable[Task]) -> Iterator[Result]:
        """Each task's results, in order per ticker, as they are produced."""
        ...

    def cancel(self, ticker: str) -> None:
        """Compute no more of this ticker's sessions; its next result is its last (`done`)."""
        ...


def executor_for(settings: Settings) -> Executor:
    """In-process by default; Dask when `workers` or `dask_address` is set."""
    if settings.dask_address:
        return DaskExecutor(address=settings.dask_address)
    if settings.workers:
        return DaskExecutor(workers=settings.workers)
    return InProcess()


class InProcess(AbstractContextManager["InProcess"]):
    """Replays each task here, yielding every session as soon as it is computed."""

    def __init__(self) -> None:
        self._cancelled: set[str] = set()

    def __exit__(self, *exc: object) -> None:
        return None

    def cancel(self, ticker: str) -> None:
        """Compute no more of this ticker's sessions; its next result is its last (`done`)."""
        self._cancelled.add(ticker)

    def run(self, tasks: Iterable[Task]) -> Iterator[Result]:
        for task in tasks:
            try:
                for step, _ in replay(task):
                    yield Result(task, [step])
                    if task.ticker in self._cancelled:
                        break
            except Exception as exc:
                yield Result(task, error=exc, done=True)
                continue
            yield Result(task, done=True)


class DaskExecutor(AbstractContextManager["DaskExecutor"]):
    """Tasks on a Dask cluster: a local one of `workers` processes, or the one at `address`."""

    def __init__(self, *, workers: int | None = None, address: str | None = None) -> None:
        self.workers, self.address = workers, address
        self._client: Any = None
        self._cluster: Any = None
        self._warming: list[Any] = []
        self._cancelled: set[str] = set()

    def __enter__(self) -> DaskExecutor:
        from distributed import Client, LocalCluster

        if self.address:
            self._client = Client(self.address, timeout="30s")
        else:
            self._cluster = LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            self._client = Client(self._cluster)
        # Let the workers import the compute stage while this process ingests and plans.
        self._warming = [
            self._client.submit(_warm_up, workers=[address], pure=False)
            for address in self._client.scheduler_info()["workers"]
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    def cancel(self, ticker: str) -> None:
        """Pass on nothing more of this ticker; its next result is its last (`done`)."""
        self._cancelled.add(ticker)

    def run(self, tasks: Iterable[Task]) -> Iterator[Result]:
        """Keeps SLOTS_PER_WORKER tickers per worker in flight; yields each ticker's chunks in order."""
        from distributed import as_completed

        pending = iter(tasks)
        finished = as_completed()
        chunk_of: dict[Any, tuple[_Chain, int]] = {}
        slots = SLOTS_PER_WORKER * max(1, len(self._client.scheduler_info()["workers"]))

        def submit() -> bool:
            task = next(pending, None)
            if task is None:
                return False
            futures = self._chunks(task)
            chain = _Chain(task, len(futures))
            for index, future in enumerate(futures):
                chunk_of[future] = (chain, index)
                finished.add(future)
            return True

        for _ in range(slots):
            submit()
        try:
            for future in finished:
                if future not in chunk_of:
                    continue  # a chunk of a cancelled ticker
                chain, index = chunk_of.pop(future)
                for result in chain.finished(index, future):
                    yield result
                    if not result.done and chain.task.ticker in self._cancelled:
                        # Its chunks on the cluster run out (cancelling a chain of them trips
                        # the scheduler); their results are dropped, and its slot is free now.
                        for f in [f for f, (owner, _) in chunk_of.items() if owner is chain]:
                            del chunk_of[f]
                        chain.failed = True
                        result = Result(chain.task, done=True)
                        yield result
                    if result.done:
                        submit()  # the next ticker takes its slot
                        break
        finally:
            self._client.cancel(list(chunk_of))

    def _chunks(self, task: Task) -> list[Any]:
        """One future per chunk of CHUNK_SESSIONS sessions, each fed the state of the last."""
        client, futures = self._client, []
        state: Any = task.state
        for lo in range(0, len(task.sessions), CHUNK_SESSIONS):
            left = len(task.sessions) - lo
            future = client.submit(
                replay_all, task.chunk(lo, lo + CHUNK_SESSIONS), state, pure=False, priority=left
            )
            state = client.submit(_state_of, future, pure=False, priority=left)
            futures.append(future)
        return futures


@dataclass
class _Chain:
    """One ticker's chunks on the cluster, released to the caller strictly in order."""

    task: Task
    chunks: int  # no futures kept: each chunk's results are let go once yielded
    next_index: int = 0
    ready: dict[int, Any] = field(default_factory=dict)
    failed: bool = False

    def finished(self, index: int, future: Any) -> Iterator[Result]:
        if self.failed:
            return
        if future.status != "finished":
            self.failed = True
            yield Result(self.task, error=future.exception(), done=True)
            return
        self.ready[index] = future
        while self.next_index in self.ready:
            steps, _ = self.ready.pop(self.next_index).result()
            self.next_index += 1
            yield Result(self.task, steps, done=self.next_index == self.chunks)


def _warm_up() -> None:
    """What a task needs imported, imported before the first task arrives."""
    import job.forecast.compute  # noqa: F401


def _state_of(result: tuple[list[Step], State]) -> State:
    return result[1]
