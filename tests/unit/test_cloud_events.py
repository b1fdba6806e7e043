"""What a ledger record publishes: its audit event always, an alert or risk event only when qerberos's own
service appended it, with ids that stay the same when the record is published again."""

from __future__ import annotations

import datetime as dt
import uuid

from models.records import Actor, LedgerRecord
from pipelines.alert_service import ALERT_CREATED, DETECTOR_SOURCE
from pipelines.events import ALERT_CREATED_EVENT, AUDIT_LOGGED_EVENT, cloud_events

_NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


def _record(event_type: str, source: str, details: dict[str, object] | None) -> LedgerRecord:
    return LedgerRecord(
        seq=41, id=uuid.UUID("01937f3a-0000-7000-8000-000000000001"), type=event_type, ref="alert:a",
        actor=Actor("qerberos:detector"), layer="qerberos", verdict="WARN", details=details,
        details_commitment="sha256:00", cid=None, occurred_at=_NOW, received_at=_NOW, source=source,
        leaf_hash=bytes(32), chain_hash=bytes(32),
    )  # fmt: skip


def test_an_alert_appended_by_the_detector_publishes_its_upstream_payload_too() -> None:
    payload = {"eventId": str(uuid.uuid4()), "timestamp": "2026-12-07T12:00:00.000Z", "alertId": "a"}
    events = cloud_events(_record(ALERT_CREATED, DETECTOR_SOURCE, payload), "//test/audit")
    assert [(AUDIT_LOGGED_EVENT, "41"), (ALERT_CREATED_EVENT, "41")] == [(e.type, e.sequence) for e in events]
    assert (payload["eventId"], payload) == (events[1].id, events[1].data)


def test_a_caller_cannot_forge_an_alert_event_by_its_type() -> None:
    forged = _record(ALERT_CREATED, "local:intruder", {"eventId": str(uuid.uuid4())})
    assert [AUDIT_LOGGED_EVENT] == [event.type for event in cloud_events(forged, "//test/audit")]


def test_republishing_a_record_gives_the_same_event_ids() -> None:
    record = _record("access", "local:test", None)
    assert [e.id for e in cloud_events(record, "//a")] == [e.id for e in cloud_events(record, "//a")]


def test_a_risk_change_whose_record_id_is_its_event_id_still_publishes_two_distinct_ids() -> None:
    """``risk.level.changed`` records take their payload's eventId as their ledger id: the audit event of that
    record must not carry the same id, or consumers deduplicating by id would drop one of the two."""
    from pipelines.risk.level_events import LEDGER_TYPE, RISK_ACTOR

    payload = {"eventId": "01937f3a-0000-7000-8000-000000000001", "timestamp": "2026-12-07T12:00:00.000Z"}
    record = _record(LEDGER_TYPE, RISK_ACTOR, payload)
    assert 2 == len({event.id for event in cloud_events(record, "//test/audit")})
