"""The forecasting model behind one small interface.

- `train` / `update` / `Forecaster` (job.model.core): learning the next session's log return,
  with the shrink-to-naive guard and the tutorial's `seed` preset.
- `replay` (job.model.replay): the compute stage, one ticker's sessions on plain arrays.
- `decide` (job.model.policy): retrain or update tonight.

TensorFlow is imported only when a network is trained or exported, never by importing this
package: forecasting and artifacts are numpy.
"""

from job.model.artifact import ArtifactError
from job.model.core import Fit, Forecaster, train, update
from job.model.policy import Decision, decide

__all__ = [
    "ArtifactError",
    "Decision",
    "Fit",
    "Forecaster",
    "decide",
    "train",
    "update",
]
