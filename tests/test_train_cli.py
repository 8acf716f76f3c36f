"""`nightcast train`: a forced from-scratch retrain per ticker on stored prices; `nightcast export`."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from job.cli import main
from job.db import get_engine, model_versions
from job.forecast.model import features
from job.forecast.model.features import OHLCV
from job.ingest.sources import SampleSource


def test_train_stores_a_retrain_per_ticker_and_reports_it(
    migrated_url: str, tiny_env: dict[str, str], capsys: pytest.CaptureFixture[str]
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


@pytest.mark.slow  # imports TensorFlow
def test_export_writes_a_keras_file_keras_opens_with_the_stored_weights(
    migrated_url: str, tiny_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import keras

    from job.db import get_engine
    from job.forecast.model.lstm import predict
    from job.forecast.model.stored import load_latest

    assert main(["ingest", "--database-url", migrated_url, "--source", "sample", "--tickers", "TSLA"]) == 0
    assert main(["train", "--database-url", migrated_url, "--tickers", "TSLA"]) == 0
    out = tmp_path / "tsla.keras"
    assert main(["export", "--database-url", migrated_url, "--ticker", "tsla", "--out", str(out)]) == 0
    recipe_path = out.with_suffix(".json")
    assert capsys.readouterr().out.endswith(
        f"TSLA: model version 1 written to {out} (how to apply it: {recipe_path})\n"
    )
    with get_engine(migrated_url).connect() as conn:
        loaded = load_latest(conn, "TSLA")
    assert loaded is not None
    model = keras.saving.load_model(out)
    spec = loaded.forecaster.spec
    x = np.random.default_rng(0).normal(size=(7, spec.window, spec.inputs)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(model(x)), predict(loaded.forecaster.weights, x), atol=1e-5)
    # The recipe beside it is enough to turn bars into the network's forecast and scale.
    recipe = json.loads(recipe_path.read_text())
    frame = SampleSource().fetch("TSLA", dt.date(2019, 1, 2), dt.date(2020, 6, 30))
    bars = OHLCV(*(frame[c].to_numpy(dtype=float) for c in ("close", "open", "high", "low", "volume")))
    rows = features.table(bars)[-recipe["window"] :]
    scaling = recipe["scaling"]
    scaled = ((rows - np.array(scaling["center"])) / np.array(scaling["scale"])).astype(np.float32)[None]
    mean, log_var = np.asarray(model(scaled))[0]
    y = float(mean) * scaling["scale"][0] + scaling["center"][0]
    assert recipe["model_version_id"] == 1 and "log return" in recipe["usage"]
    network_close, network_scale = loaded.forecaster.outlook(bars)
    assert bars.close[-1] * np.exp(y) == pytest.approx(network_close, rel=1e-5)
    assert float(np.exp(log_var / 2)) * scaling["scale"][0] == pytest.approx(network_scale, rel=1e-5)
    for args, message in (
        (["--ticker", "NOPE", "--out", str(out)], "NOPE: no model version stored for this ticker"),
        (["--ticker", "TSLA", "--version", "99", "--out", str(out)], "TSLA: no version 99 stored"),
        (["--ticker", "TSLA", "--out", str(tmp_path / "m.h5")], "a Keras model file must end in .keras"),
    ):
        assert main(["export", "--database-url", migrated_url, *args]) == (
            2 if "--out" in args[-2:] and args[-1].endswith(".h5") else 1
        )
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
