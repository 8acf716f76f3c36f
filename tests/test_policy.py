"""Retrain or update: each rule on its own, and the order they are checked in."""

import sys

import pytest

from job.forecast.params import RetrainPolicy
from job.forecast.policy import Decision, decide

POLICY = RetrainPolicy(retrain_every=20, skill_threshold=1.1)


def _decide(**overrides: object) -> Decision:
    args = {"has_model": True, "sessions_since_retrain": 3, "revised_since_model": False, "skill": 0.98}
    return decide(**(args | overrides), policy=POLICY)  # type: ignore[arg-type]


def test_a_healthy_recent_model_is_updated() -> None:
    decision = _decide()
    assert decision.kind == "update" and "3 sessions" in decision.reason


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"has_model": False}, "no usable model"),
        ({"revised_since_model": True}, "revised"),
        ({"sessions_since_retrain": 20}, "20 sessions since the last retrain"),
        ({"sessions_since_retrain": 35}, "35 sessions"),
        ({"skill": 1.25}, "skill 1.250 above threshold 1.100"),
    ],
)
def test_each_retrain_reason(overrides: dict, reason: str) -> None:
    decision = _decide(**overrides)
    assert decision.kind == "retrain" and reason in decision.reason


@pytest.mark.parametrize("skill", [None, 1.1, 0.5])
def test_skill_at_threshold_or_unknown_does_not_retrain(skill: float | None) -> None:
    assert _decide(skill=skill).kind == "update"


def test_one_session_before_the_schedule_is_still_an_update() -> None:
    assert _decide(sessions_since_retrain=19).kind == "update"


@pytest.mark.slow
def test_importing_the_policy_or_the_model_does_not_import_tensorflow() -> None:
    import subprocess

    code = (
        "import sys, job.forecast.policy, job.forecast.model;"
        " print(any(m in sys.modules for m in ('tensorflow', 'keras')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
