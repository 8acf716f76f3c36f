"""Model artifacts: the bytes stored in `model_versions.artifact`.

Format (version 1): a zip archive holding
- `model.keras`: the network in Keras' own `.keras` format (`keras.saving.load_model` opens it);
- `forecaster.json`: what Keras does not know: preset, architecture, the scaling statistics
  of the training window and the shrink factor.
A zip keeps both in one self-describing blob that `unzip -l` can inspect; `artifact_sha256` is
the sha256 of these bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import Any

from job.errors import TickerError
from job.model import network
from job.model.core import Forecaster
from job.model.network import Spec
from job.model.windows import Scaling

FORMAT = "nightcast-forecaster/1"


class ArtifactError(TickerError):
    """A stored model cannot be used (pruned, missing, corrupt); the pipeline retrains instead."""

    def __init__(self, ticker: str, version_id: int, problem: str) -> None:
        super().__init__(ticker, f"model version {version_id}: {problem}")
        self.version_id = version_id


def describe(forecaster: Forecaster) -> dict[str, Any]:
    """Everything besides the weights needed to rebuild the forecaster (also stored in `params`)."""
    return {
        "format": FORMAT,
        "preset": forecaster.preset,
        "window": forecaster.spec.window,
        "lstm_units": list(forecaster.spec.lstm_units),
        "dense_units": forecaster.spec.dense_units,
        "scaling": {
            "kind": forecaster.scaling.kind,
            "center": forecaster.scaling.center,
            "scale": forecaster.scaling.scale,
        },
        "shrink": forecaster.shrink,
    }


def pack(forecaster: Forecaster) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("forecaster.json", json.dumps(describe(forecaster), sort_keys=True))
        archive.writestr("model.keras", network.to_keras_bytes(forecaster.spec, forecaster.weights))
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unpack(data: bytes) -> Forecaster:
    """The forecaster in `data`; raises ValueError (or zip/Keras errors) when it is not one."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        meta = json.loads(archive.read("forecaster.json"))
        keras_bytes = archive.read("model.keras")
    if meta.get("format") != FORMAT:
        raise ValueError(f"unknown artifact format {meta.get('format')!r}")
    spec = Spec(int(meta["window"]), tuple(int(u) for u in meta["lstm_units"]), int(meta["dense_units"]))
    scaling = Scaling(
        meta["scaling"]["kind"], float(meta["scaling"]["center"]), float(meta["scaling"]["scale"])
    )
    weights = network.from_keras_bytes(spec, keras_bytes)
    return Forecaster(meta["preset"], spec, weights, scaling, float(meta["shrink"]))
