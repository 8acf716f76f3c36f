"""The forecasting model behind one small interface.

- `train` / `update` / `Forecaster` (job.model.core): learning the next session's log return,
  with the shrink-to-naive guard and the tutorial's `seed` preset.
- `save_version` / `load_latest` (job.model.store): versions and artifacts in SQL.
- `decide` (job.model.policy): retrain or update tonight.

TensorFlow is imported only when a network is trained, saved or loaded, never by importing
this package (`job.model.policy` stays light).
"""

from job.model.artifact import ArtifactError
from job.model.core import Fit, Forecaster, train, update
from job.model.network import warm_up
from job.model.policy import Decision, decide
from job.model.store import LoadedModel, load_latest, save_version

__all__ = [
    "ArtifactError",
    "Decision",
    "Fit",
    "Forecaster",
    "LoadedModel",
    "decide",
    "load_latest",
    "save_version",
    "train",
    "update",
    "warm_up",
]
