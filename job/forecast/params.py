"""The forecast stage's knobs: the network's hyper-parameters and the retrain policy, set as
`NIGHTCAST_MODEL__*` and `NIGHTCAST_POLICY__*` (job.config) and stored with every version."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

Units = Annotated[int, Field(ge=1, le=4096)]


class ModelParams(BaseModel):
    """Hyper-parameters of the forecaster; stored verbatim with every model version. Every
    value is checked here (positive sizes, finite rates, a seed Keras accepts), so a bad one
    names its setting instead of failing each ticker inside Keras every night."""

    model_config = ConfigDict(allow_inf_nan=False)

    preset: str = Field("default", description="a key of job.forecast.model.windows.PRESETS")
    window: int = Field(10, ge=2, le=250)
    lstm_units: tuple[Units, Units] = (50, 50)
    dense_units: Units = 25
    learning_rate: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    max_epochs: int = Field(20, ge=1)
    patience: int = Field(3, ge=1)
    validation_fraction: float = Field(0.2, gt=0, lt=0.5)
    train_sessions: int = Field(750, ge=50, description="most recent sessions used by a retrain")
    update_sessions: int = Field(75, ge=20, description="recent sessions a nightly update sees")
    update_epochs: int = Field(2, ge=1)
    update_learning_rate: float = Field(2e-4, gt=0)
    seed: int = Field(42, ge=0, lt=2**31)
    guard: bool = Field(True, description="shrink forecasts toward naive by a factor fit on validation")

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        from job.forecast.model.windows import PRESETS  # the presets are the model's to define

        if value not in PRESETS:
            raise ValueError(f"unknown preset {value!r} (one of {', '.join(PRESETS)})")
        return value


class RetrainPolicy(BaseModel):
    """When a nightly update is not enough and the model is rebuilt from scratch."""

    model_config = ConfigDict(allow_inf_nan=False)

    retrain_every: int = Field(20, ge=1, description="sessions between scheduled retrains")
    skill_threshold: float = Field(1.10, gt=0, description="RMSE_lstm / RMSE_naive that forces a retrain")
    skill_window: int = Field(20, ge=2)
    keep_artifacts: int = Field(5, ge=1, description="newest versions per ticker that keep their bytes")
