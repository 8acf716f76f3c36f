"""One cycle at a time, on both databases, and no stale lock after a killed holder."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from job.lock import LockBusy, cycle_lock

HOLD = """
import sys, time
from job.lock import cycle_lock
with cycle_lock(sys.argv[1], wait=False):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_second_holder_is_refused_while_the_first_runs(migrated_url: str) -> None:
    with (
        cycle_lock(migrated_url, wait=False),
        pytest.raises(LockBusy, match="--wait"),
        cycle_lock(migrated_url, wait=False),
    ):
        pass
    with cycle_lock(migrated_url, wait=False):  # released on exit
        pass


def test_wait_blocks_until_the_holder_finishes(migrated_url: str) -> None:
    acquired_at: list[float] = []

    def second() -> None:
        with cycle_lock(migrated_url, wait=True):
            acquired_at.append(time.monotonic())

    with cycle_lock(migrated_url, wait=False):
        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.5)
        assert not acquired_at
        released_time = time.monotonic()
    waiter.join(10)
    assert acquired_at and acquired_at[0] >= released_time


def test_a_killed_holder_leaves_no_stale_lock(migrated_url: str) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, migrated_url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockBusy), cycle_lock(migrated_url, wait=False):
            pass
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while True:  # the server notices the dead session within moments
        try:
            with cycle_lock(migrated_url, wait=False):
                break
        except LockBusy:
            assert time.monotonic() < deadline, "lock still held after its holder was killed"
            time.sleep(0.1)
