"""The ``risk.level.changed`` event's id: one id per content, so recomputing appends nothing and two
different changes never collide in the ledger (where one id with two contents is a 409)."""

from __future__ import annotations

from analytics.risk.scoring import Factor, RiskAssessment
from models.risk_store import LevelChange
from pipelines.risk.level_events import level_changed_event

ASSESSMENT = RiskAssessment(
    identity="did:squid:alice",
    score=0.71,
    level="high",
    factors=(Factor("failed_auth", 0.4, 0.9),),
    as_of_ms=1_767_225_600_000,
    expires_at_ms=1_767_225_900_000,
    operation=None,
    model_version="risk-1",
)


def _change(previous_score: float) -> LevelChange:
    return LevelChange("did:squid:alice", "medium", previous_score, "high", 0.71)


def test_the_same_change_recomputed_has_the_same_id() -> None:
    assert level_changed_event(ASSESSMENT, _change(0.42)).id == level_changed_event(ASSESSMENT, _change(0.42)).id


def test_changes_that_differ_only_in_their_previous_score_have_two_ids() -> None:
    first, second = (level_changed_event(ASSESSMENT, _change(score)) for score in (0.42, 0.45))

    assert first.id != second.id
    assert (str(first.id), str(second.id)) == (first.details["eventId"], second.details["eventId"])  # type: ignore[index]
