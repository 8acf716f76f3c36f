"""Per-ticker claims: one cycle per ticker (per database on SQLite), none outliving its holder,
and a holder that notices a lost claim before it commits again."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy as sa

from job.claims import Claims
from job.errors import ClaimLost

HOLD = """
import sys, time
from job.claims import Claims
with Claims(sys.argv[1]) as claims:
    print(",".join(claims.take(sys.argv[2].split(","), wait=False)), flush=True)
    time.sleep(120)
"""


def test_a_claimed_ticker_is_refused_to_a_second_holder(migrated_url: str) -> None:
    with Claims(migrated_url) as first, Claims(migrated_url) as second:
        assert first.take(["AAA", "BBB"], wait=False) == ["AAA", "BBB"]
        assert second.take(["AAA"], wait=False) == []
        first.release("AAA")
        if first.postgres:  # per ticker on PostgreSQL: released is free, the rest stays held
            assert second.take(["AAA", "BBB", "CCC"], wait=False) == ["AAA", "CCC"]
    with Claims(migrated_url) as third:  # all released on exit
        assert third.take(["AAA", "BBB"], wait=False) == ["AAA", "BBB"]


def test_postgresql_claims_are_per_ticker(pg_url: str) -> None:
    with Claims(pg_url) as first, Claims(pg_url) as second:
        assert first.take(["AAA"], wait=False) == ["AAA"]
        assert second.take(["AAA", "BBB"], wait=False) == ["BBB"]


def test_wait_blocks_until_the_holder_lets_go(migrated_url: str) -> None:
    acquired_at: list[float] = []

    def second() -> None:
        with Claims(migrated_url) as claims:
            claims.take(["AAA"], wait=True)
            acquired_at.append(time.monotonic())

    with Claims(migrated_url) as first:
        first.take(["AAA"], wait=False)
        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.5)
        assert not acquired_at
        released_at = time.monotonic()
    waiter.join(10)
    assert acquired_at and acquired_at[0] >= released_at


def test_a_killed_holder_leaves_no_stale_claim(migrated_url: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, migrated_url, "AAA"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "AAA"
        with Claims(migrated_url) as claims:
            assert claims.take(["AAA"], wait=False) == []
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while True:  # the server (or the OS) notices the dead holder within moments
        with Claims(migrated_url) as claims:
            if claims.take(["AAA"], wait=False) == ["AAA"]:
                break
        assert time.monotonic() < deadline, "claim still held after its holder was killed"
        time.sleep(0.1)


def test_a_terminated_session_is_noticed_before_the_next_commit(pg_url: str) -> None:
    with Claims(pg_url) as claims:
        claims.take(["AAA"], wait=False)
        claims.verify("AAA")  # held: passes
        pid = claims.conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        claims.conn.commit()
        with sa.create_engine(pg_url, poolclass=sa.NullPool).connect() as admin:
            admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with Claims(pg_url) as other:  # the claim died with the session: another cycle takes it
            deadline = time.monotonic() + 10
            while other.take(["AAA"], wait=False) != ["AAA"]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            with pytest.raises(ClaimLost, match="AAA"):
                claims.conn.rollback()
                claims.verify("AAA")
            with pytest.raises(ClaimLost, match="AAA"):  # and again, on a reconnected session
                claims.verify("AAA")
    with pytest.raises(ClaimLost, match="BBB"), Claims(pg_url) as never:
        never.verify("BBB")
