"""Model artifacts: the bytes stored in `model_versions.artifact`.

Format (version 3): a zip archive that `numpy.load` opens as an `.npz`:
- `forecaster.json`: preset, architecture (with its inputs per session and outputs), the
  scaling statistics of the training window (per input column) and the shrink factor;
- one `.npy` per weight array, in Keras' `get_weights` order (`00_lstm_kernel.npy`, ...);
- `calibration.npy`: the validation-tail scores its prediction intervals start from.
Written deterministically (fixed entry times, sorted keys): the same model gives the same
bytes, hence the same `artifact_sha256`, in any process. Reading it needs no TensorFlow;
`nightcast export` turns one into a `.keras` file for people who want Keras' own format.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import Any, Protocol

import numpy as np

from job.errors import TickerError
from job.forecast.model.lstm import Spec, shapes
from job.forecast.model.windows import Scaling

FORMAT = "nightcast-forecaster/3"
WEIGHT_NAMES = (
    "lstm_kernel", "lstm_recurrent_kernel", "lstm_bias",
    "lstm_1_kernel", "lstm_1_recurrent_kernel", "lstm_1_bias",
    "dense_kernel", "dense_bias", "dense_1_kernel", "dense_1_bias",
)  # fmt: skip
_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip's earliest time: entries carry no clock


class ArtifactError(TickerError):
    """A stored model cannot be used (pruned, missing, corrupt); the pipeline retrains instead."""

    def __init__(self, ticker: str, version_id: int, problem: str) -> None:
        super().__init__(ticker, f"model version {version_id}: {problem}")
        self.version_id = version_id


class Packed(Protocol):
    """What an artifact holds: a forecaster's fields (job.forecast.model.core.Forecaster,
    which builds itself from `unpack`; this module imports nothing of it)."""

    preset: str
    spec: Spec
    weights: tuple[np.ndarray, ...]
    scaling: Scaling
    shrink: float
    calibration: np.ndarray


def describe(forecaster: Packed) -> dict[str, Any]:
    """Everything besides the weights needed to rebuild the forecaster (also stored in `params`)."""
    return {
        "format": FORMAT,
        "preset": forecaster.preset,
        "window": forecaster.spec.window,
        "lstm_units": list(forecaster.spec.lstm_units),
        "dense_units": forecaster.spec.dense_units,
        "inputs": forecaster.spec.inputs,
        "outputs": forecaster.spec.outputs,
        "scaling": {
            "kind": forecaster.scaling.kind,
            "center": list(forecaster.scaling.center),
            "scale": list(forecaster.scaling.scale),
        },
        "shrink": forecaster.shrink,
    }


def pack(forecaster: Packed) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(_entry("forecaster.json"), json.dumps(describe(forecaster), sort_keys=True))
        for index, (name, array) in enumerate(zip(WEIGHT_NAMES, forecaster.weights, strict=True)):
            archive.writestr(_entry(f"{index:02d}_{name}.npy"), _npy(array, "<f4"))
        archive.writestr(_entry("calibration.npy"), _npy(forecaster.calibration, "<f8"))
    return buffer.getvalue()


def _npy(array: np.ndarray, dtype: str) -> bytes:
    npy = io.BytesIO()
    np.lib.format.write_array(npy, np.ascontiguousarray(array, dtype), allow_pickle=False)
    return npy.getvalue()


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.external_attr = 0o644 << 16
    return info


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unpack(data: bytes) -> dict[str, Any]:
    """The forecaster's fields in `data`; raises ValueError (or zip/JSON errors) when it is not one."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        meta = json.loads(npz["forecaster.json"])
        if meta.get("format") != FORMAT:
            raise ValueError(f"unknown artifact format {meta.get('format')!r}")
        weights = tuple(npz[name] for name in sorted(npz.files) if name[:2].isdigit())
        calibration = npz["calibration"]
    spec = Spec(
        int(meta["window"]), tuple(int(u) for u in meta["lstm_units"]), int(meta["dense_units"]),
        int(meta["inputs"]), int(meta["outputs"]),
    )  # fmt: skip
    if [w.shape for w in weights] != shapes(spec):
        raise ValueError(f"weight shapes {[w.shape for w in weights]} do not fit {spec}")
    center, scale = (tuple(float(v) for v in meta["scaling"][name]) for name in ("center", "scale"))
    if len(center) != len(scale) or len(center) != spec.inputs:
        raise ValueError(f"scaling of {len(center)} columns does not fit {spec}")
    scaling = Scaling(meta["scaling"]["kind"], center, scale)
    return {"preset": meta["preset"], "spec": spec, "weights": weights, "scaling": scaling,
            "shrink": float(meta["shrink"]), "calibration": calibration}  # fmt: skip
