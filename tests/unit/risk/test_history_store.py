"""Level-change detection, the history store and its write-behind writer (SQLite file, no services)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine

from models.risk_store import CurrentRisk, LevelChange, RiskRecord, RiskStore, create_risk_tables, level_change
from pipelines.risk.writer import RiskWriter


def _record(score: float, level: str, at: int, operation: str | None = None) -> RiskRecord:
    return RiskRecord("did:squid:a", score, level, [("deny_events", 1.0, score)], at, operation)


def test_a_first_assessment_changes_the_level_only_above_low() -> None:
    assert level_change(None, _record(0.1, "low", 1)) is None
    assert LevelChange("did:squid:a", None, None, "medium", 0.4) == level_change(None, _record(0.4, "medium", 1))


def test_a_change_is_rising_or_falling() -> None:
    previous = CurrentRisk("did:squid:a", 0.7, "high", [], 1)
    falling = level_change(previous, _record(0.2, "low", 2))
    assert falling is not None and not falling.rising and "high" == falling.previous_level
    assert level_change(previous, _record(0.65, "high", 2)) is None


def test_history_keeps_distinct_assessments_and_current_only_identity_ones(tmp_path: Path) -> None:
    store = RiskStore(create_engine(f"sqlite:///{tmp_path / 'risk.db'}"))
    create_risk_tables(store.engine)
    assert store.record(_record(0.4, "medium", 1))
    assert not store.record(_record(0.4, "medium", 1))  # the same assessment again
    assert store.record(_record(0.9, "critical", 1, operation="payment"))
    assert [(0.9, "payment"), (0.4, None)] == [(r.score, r.operation) for r in store.history("did:squid:a")]
    current = store.current("did:squid:a")
    assert current is not None and (0.4, "medium") == (current.score, current.level)
    assert ["did:squid:a"] == [c.identity for c in store.riskiest(min_level="medium")]
    assert [] == store.riskiest(min_level="high")


def test_the_writer_answers_queued_levels_and_stores_them_on_flush(tmp_path: Path) -> None:
    store = RiskStore(create_engine(f"sqlite:///{tmp_path / 'risk.db'}"))
    create_risk_tables(store.engine)
    writer = RiskWriter(store, interval=60)
    writer.submit(_record(0.7, "high", 5))
    writer.submit(_record(0.7, "high", 5))
    current = writer.current("did:squid:a")
    assert current is not None and "high" == current.level
    writer.close()
    assert [0.7] == [r.score for r in store.history("did:squid:a")]


def test_a_batch_skips_repeats_and_keeps_the_newest_identity_assessment_current(tmp_path: Path) -> None:
    store = RiskStore(create_engine(f"sqlite:///{tmp_path / 'risk.db'}"))
    create_risk_tables(store.engine)
    store.record(_record(0.4, "medium", 1))
    batch = [
        _record(0.4, "medium", 1),  # the stored newest row again
        _record(0.7, "high", 2),
        _record(0.7, "high", 2),  # a repeat within the batch
        _record(0.9, "critical", 2, operation="payment"),
        _record(0.2, "low", 3),
    ]
    assert 3 == store.record_many(batch)
    assert [0.2, 0.9, 0.7, 0.4] == [r.score for r in store.history("did:squid:a")]
    current = store.current("did:squid:a")
    assert current is not None and (0.2, "low", 3) == (current.score, current.level, current.computed_at_ms)
