"""The forecasting model: windows and scaling, the network, train / update / forecast, artifacts.

`train`, `update` and `Forecaster` (job.forecast.model.core) are its interface: numpy arrays in and
out, in numpy: training, forecasting and artifacts never import TensorFlow (only a Keras
export and the tutorial's `seed` preset do). The compute stage that replays sessions
with it lives in job.forecast.compute.
"""

from job.forecast.model.artifact import ArtifactError
from job.forecast.model.core import Fit, Forecaster, train, update

__all__ = ["ArtifactError", "Fit", "Forecaster", "train", "update"]
