"""Alerts: deduplicated per identity and pattern, resolved or dismissed with a reason, all in the ledger."""

from __future__ import annotations

import datetime as dt

import pytest

from models.alerts import AlertCandidate, ScoreRow, create_alert_tables, false_positive_labels
from models.ledger import initialise
from models.records import Actor, SearchQuery
from pipelines.alert_service import AlertService
from qerberos.errors import ConflictError, NotFoundError, ValidationError

HOUR = 3_600_000
T_REPLAY = 1_764_547_200_000  # 2025-12-01T00:00:00Z


@pytest.fixture
def ledger(sqlite_settings):
    ledger = initialise(sqlite_settings)
    create_alert_tables(ledger.engine)
    yield ledger
    ledger.close()


@pytest.fixture
def store(ledger) -> AlertService:
    return AlertService(ledger.engine, ledger)


def candidate(
    squid: str = "did:squid:a",
    pattern: str = "brute_force",
    severity: str = "high",
    score: float = 0.7,
    window: int = 10 * HOUR,
) -> AlertCandidate:
    return AlertCandidate(squid, pattern, "T1110", severity, score, f"{pattern} on {squid}",  # type: ignore[arg-type]
                          {"rule": pattern}, window_start_ms=window)  # fmt: skip


def alert_events(ledger, type_: str) -> list:
    return list(ledger.search(SearchQuery(type=type_, limit=100)).records)


def test_a_repeat_of_the_same_pattern_on_the_same_identity_updates_one_alert(store, ledger):
    first = store.raise_alert(candidate(score=0.6))
    again = store.raise_alert(candidate(score=0.9, window=11 * HOUR))
    other_pattern = store.raise_alert(candidate(pattern="bulk_download"))
    other_identity = store.raise_alert(candidate(squid="did:squid:b"))
    assert ("created", "repeated", "created", "created") == (
        first.kind, again.kind, other_pattern.kind, other_identity.kind)  # fmt: skip
    assert first.alert.id == again.alert.id
    stored = store.get(first.alert.id)
    assert (2, 0.9, [10 * HOUR, 11 * HOUR]) == (stored.occurrences, stored.score, stored.explanation["windows"])
    assert 3 == store.count(status="active")
    created = alert_events(ledger, "security.alert.created")
    assert 3 == len(created)
    assert {"qerberos"} == {e.layer for e in created}
    assert {"qerberos:detector"} == {e.source for e in created}
    assert {"did:squid:a", "did:squid:b"} == {e.details["affectedIdentities"][0] for e in created}


def test_a_rise_in_severity_is_recorded_as_an_update(store, ledger):
    first = store.raise_alert(candidate(severity="medium"))
    change = store.raise_alert(candidate(severity="critical"))
    assert ("escalated", "critical") == (change.kind, store.get(first.alert.id).severity)
    assert ["active"] == [e.details["status"] for e in alert_events(ledger, "security.alert.updated")]


def test_dismissal_with_a_reason_is_appended_and_becomes_a_false_positive_label(store, ledger):
    alert = store.raise_alert(candidate()).alert
    store.raise_alert(candidate(window=11 * HOUR))
    analyst = Actor("did:squid:analyst")
    dismissed = store.set_status(alert.id, "dismissed", "planned load test", actor=analyst, source="local:analyst")
    assert ("dismissed", "planned load test") == (dismissed.status, store.get(alert.id).reason)
    [event] = alert_events(ledger, "security.alert.updated")
    assert ("did:squid:analyst", "local:analyst", "dismissed", "planned load test") == (
        event.actor.squid_id, event.source, event.details["status"], event.details["reason"])  # fmt: skip
    labels = false_positive_labels(ledger.engine)
    start = dt.datetime(1970, 1, 1, 10, tzinfo=dt.UTC)
    assert [("did:squid:a", start, 0), ("did:squid:a", start + dt.timedelta(hours=1), 0)] == labels.rows()
    assert ["squid_id", "window_start", "label"] == labels.columns
    # a new occurrence after the dismissal opens a new alert
    assert "created" == store.raise_alert(candidate()).kind


def test_resolution_needs_a_reason_an_active_alert_and_a_known_id(store):
    alert = store.raise_alert(candidate()).alert
    with pytest.raises(ValidationError) as bad:
        store.set_status(alert.id, "resolved", "  ")
    assert {"reason"} == set(bad.value.details)
    with pytest.raises(ValidationError):
        store.set_status(alert.id, "active", "why not")
    store.set_status(alert.id, "resolved", "password reset, attacker locked out")
    with pytest.raises(ConflictError):
        store.set_status(alert.id, "dismissed", "again")
    with pytest.raises(NotFoundError):
        store.set_status("00000000-0000-4000-8000-000000000000", "resolved", "x")
    assert [] == store.active_for("did:squid:a")
    assert 0 == false_positive_labels(store.engine).height


def test_list_filters_and_latest_score(store):
    store.raise_alert(candidate(severity="high"))
    store.raise_alert(candidate(squid="did:squid:b", severity="low"))
    assert ["did:squid:a"] == [a.squid_id for a in store.list(severity="high")]
    assert 1 == len(store.list(limit=1))
    store.record_scores([ScoreRow("did:squid:a", HOUR, 0.2, "1"), ScoreRow("did:squid:a", 2 * HOUR, 0.5, "1")])
    store.record_scores([ScoreRow("did:squid:a", 2 * HOUR, 0.97, "2")])
    assert ScoreRow("did:squid:a", 2 * HOUR, 0.97, "2") == store.latest_score("did:squid:a")
    assert store.latest_score("did:squid:zz") is None


def test_an_identitys_active_alerts_are_read_through_its_index_not_every_active_alert(store):
    """``active_for`` runs on every risk assessment: it must not scan the active alerts of everyone."""
    store.raise_alert(candidate(squid="did:squid:a"))
    for index in range(50):
        store.raise_alert(candidate(squid=f"did:squid:{index}"))
    store.raise_alert(candidate(squid="did:squid:a", pattern="exfiltration", severity="critical"))
    with store.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
        plan = connection.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT * FROM alerts WHERE status = 'active' AND squid_id = 'did:squid:a'"
            " ORDER BY created_at_ms DESC, id LIMIT 1000"
        ).fetchall()
    assert ["SEARCH alerts USING INDEX ix_alerts_squid_status_created (squid_id=? AND status=?)"] == [
        detail for *_, detail in plan if detail.startswith(("SEARCH", "SCAN"))
    ]
    assert {"exfiltration", "brute_force"} == {alert.pattern for alert in store.active_for("did:squid:a")}


def test_an_alert_is_dated_by_its_event_time_capped_at_the_clock(store):
    """Risk decays alerts in event time: a replay of last month dates its alerts last month, while an event
    from a client's future cannot date an alert after the clock."""
    import dataclasses
    import time

    last_month = int(time.time() * 1000) - 30 * 24 * HOUR
    replayed = store.raise_alert(dataclasses.replace(candidate(), occurred_at_ms=last_month)).alert
    assert (last_month, last_month) == (replayed.created_at_ms, replayed.updated_at_ms)
    future = store.raise_alert(dataclasses.replace(candidate(pattern="spray"), occurred_at_ms=2**50)).alert
    assert future.created_at_ms <= int(time.time() * 1000)


def test_the_ledger_records_an_alert_at_its_event_time(store, ledger):
    """Risk's "now" is the ledger's newest event time: an alert raised while replaying last month must be
    recorded last month, or it would move "now" to today and decay every replayed alert to nothing."""
    import dataclasses

    last_month = T_REPLAY
    store.raise_alert(dataclasses.replace(candidate(), occurred_at_ms=last_month))
    (record,) = ledger.search(SearchQuery(type="security.alert.created", limit=5)).records
    assert last_month == int(record.occurred_at.timestamp() * 1000)
