"""`nightcast train`: a forced from-scratch retrain per ticker on stored prices."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from job.cli import main
from job.db import get_engine, model_versions
from tests.conftest import tiny_model_env


@pytest.fixture
def tiny_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {**tiny_model_env(), "NIGHTCAST_HISTORY_START": "2019-01-01"}.items():
        monkeypatch.setenv(key, value)


def test_train_stores_a_retrain_per_ticker_and_reports_it(
    migrated_url: str, tiny_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", "--database-url", migrated_url, "--source", "sample", "--tickers", "TSLA"]) == 0
    capsys.readouterr()
    code = main(["train", "--database-url", migrated_url, "--tickers", "TSLA,NOPE", "--as-of", "2020-06-30"])
    captured = capsys.readouterr()
    assert code == 1  # NOPE has no prices; TSLA is still trained
    assert "NOPE: no stored prices on or before 2020-06-30" in captured.err
    line = captured.out.strip()
    assert re.fullmatch(
        r"TSLA: version 1, trained on \d{4}-\d\d-\d\d\.\.2020-06-30, \d+ epochs, "
        r"validation RMSE [\d.]+ vs naive [\d.]+ \(ratio [\d.]+\)",
        line,
    ), line
    with get_engine(migrated_url).connect() as conn:
        row = conn.execute(sa.select(model_versions)).one()
    assert (row.ticker, row.kind, str(row.trained_through)) == ("TSLA", "retrain", "2020-06-30")
    assert row.artifact is not None and row.params["window"] == 5
