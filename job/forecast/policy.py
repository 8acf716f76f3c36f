"""Retrain or update tonight? One pure function, no TensorFlow, easy to test and to explain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from job.forecast.params import RetrainPolicy


@dataclass(frozen=True)
class Decision:
    kind: Literal["retrain", "update"]
    reason: str


def decide(
    *,
    has_model: bool,
    sessions_since_retrain: int,
    revised_since_model: bool,
    skill: float | None,
    policy: RetrainPolicy,
) -> Decision:
    """Retrain from scratch when there is no usable model, prices were revised under it, the
    scheduled retrain is due, or rolling skill (RMSE_lstm / RMSE_naive) is worse than the
    threshold; otherwise fine-tune (cheap, keeps the model current between retrains).
    """
    if not has_model:
        return Decision("retrain", "no usable model")
    if revised_since_model:
        return Decision("retrain", "prices revised since the model was trained")
    if sessions_since_retrain >= policy.retrain_every:
        return Decision(
            "retrain",
            f"{sessions_since_retrain} sessions since the last retrain (every {policy.retrain_every})",
        )
    if skill is not None and skill > policy.skill_threshold:
        return Decision("retrain", f"skill {skill:.3f} above threshold {policy.skill_threshold:.3f}")
    return Decision("update", f"scheduled update ({sessions_since_retrain} sessions since the last retrain)")
