"""What the terminal shows of a long cycle: a progress bar whose ticker total is known from
the start, and no Dask chatter unless asked for."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from job import console
from tests.conftest import tiny_model_env


def test_the_progress_bar_counts_tickers_against_a_known_total(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(console, "Console", lambda **_: Console(file=screen, force_terminal=True, width=120))
    with console.progress(3) as (plan, advance):
        plan("AAA", 2)
        advance("AAA", date(2020, 7, 30))
    shown = screen.getvalue()
    assert "1/3" in shown and "tickers" in shown  # planned of a total known at once
    assert "1/2" in shown and "sessions" in shown


@pytest.mark.slow
def test_dask_workers_log_nothing_unless_verbose(tmp_path: Path) -> None:
    env = {
        **os.environ,  # the caller's settings are gone (conftest)
        **tiny_model_env(),
        "NIGHTCAST_DATABASE_URL": f"sqlite:///{tmp_path / 'n.db'}",
        "NIGHTCAST_HISTORY_START": "2020-01-01",
    }
    cli = [sys.executable, "-m", "job"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True, cwd=tmp_path)
    args = ["backfill", "--source", "sample", "--start", "2020-07-27", "--workers", "2"]
    done = subprocess.run([*cli, *args], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    chatter = [line for line in done.stderr.splitlines() if re.search(r"(INFO|WARNING) +distributed\.", line)]
    assert chatter == [], done.stderr  # without the fix: ~34 INFO lines of the scheduler and workers


def test_json_of_a_flat_range_is_strict_json() -> None:
    """Naive's RMSE is 0 over prices that never moved: the ratio is no number, and `null`."""
    import json

    from job.forecast.evaluate import RangeSummary
    from job.pipeline import CycleReport

    same = {"lstm": np.full(5, 10.0), "naive": np.full(5, 10.0)}
    flat = RangeSummary("FLAT", 5, {"lstm": {"rmse": 0.0}, "naive": {"rmse": 0.0}}, same)
    text = console.report_json(CycleReport(1, "succeeded", [], {"FLAT": flat}))
    assert (
        json.loads(text, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))["summaries"]["FLAT"][
            "rmse_ratio"
        ]
        is None
    )
