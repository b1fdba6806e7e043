"""Our OCSF output validates against the OCSF 1.7.0 schema (pydantic-ocsf's models, generated from the
schema), for every class the taxonomy names, with an erased event and an alert as a Detection Finding; each
event carries its id, ledger sequence and leaf hash."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import uuid
from typing import Any

import pytest
from ocsf.v1_7_0 import events as ocsf

from analytics.ocsf_out import OCSF_VERSION, detection_finding, ocsf_event
from analytics.taxonomy import default_taxonomy
from models.alerts import AlertView
from models.records import Actor, LedgerRecord

TAXONOMY = default_taxonomy()
MODELS: dict[int, Any] = {
    0: ocsf.BaseEvent,
    1001: ocsf.FileActivity,
    2004: ocsf.DetectionFinding,
    3001: ocsf.AccountChange,
    3002: ocsf.Authentication,
    3003: ocsf.AuthorizeSession,
    3004: ocsf.EntityManagement,
    3005: ocsf.UserAccess,
    3006: ocsf.GroupManagement,
    6001: ocsf.WebResourcesActivity,
    6003: ocsf.ApiActivity,
    6004: ocsf.WebResourceAccessActivity,
}
AT = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)


def record(
    type_: str, layer: str = "portal", verdict: str = "ALLOW", details: dict[str, Any] | None = None
) -> LedgerRecord:
    return LedgerRecord(
        seq=41,
        id=uuid.UUID("6f1c2a8e-3d4b-4e6f-8a9b-0c1d2e3f4a5b"),
        type=type_,
        ref="res:1",
        actor=Actor("did:squid:alice", "work", "dao:1"),
        layer=layer,
        verdict=verdict,  # type: ignore[arg-type]
        details=details,
        details_commitment="sha256:" + "0" * 64,
        cid=None,
        occurred_at=AT,
        received_at=AT + dt.timedelta(seconds=1),
        source="local:test",
        leaf_hash=hashlib.sha256(b"leaf").digest(),
        chain_hash=hashlib.sha256(b"chain").digest(),
    )


def validated(event: dict[str, Any]) -> None:
    model = MODELS[event["class_uid"]]
    model.model_validate(event)
    known = set(model.model_fields) | {field.alias for field in model.model_fields.values() if field.alias}
    assert set(event) <= known, set(event) - known  # nothing outside the schema's attributes of the class


@pytest.mark.parametrize(
    ("type_", "layer", "class_uid"),
    [
        ("user.signin", "portal", 3002),
        ("user.password.reset", "accounts", 3001),
        ("admin.role.grant", "iam", 3005),
        ("group.add_member", "iam", 3006),
        ("file.read", "files", 1001),
        ("report.export", "crm", 6001),
        ("DescribeInstances", "ec2.amazonaws.com", 6003),
        ("permission_grant", "qonsent", 6004),
        ("frobnicate", "widgets", 0),
    ],
)
def test_events_of_every_class_validate_against_the_schema(type_: str, layer: str, class_uid: int):
    details = {"ip": "2001:db8::1", "country": "DE", "user_agent": "curl/8", "n": 1}
    category = TAXONOMY.classify(type_, layer, "DENY", details)
    event = ocsf_event(record(type_, layer, "DENY", details), category, TAXONOMY, origin="test.example/audit")
    assert class_uid == event["class_uid"]
    validated(event)
    assert (2, "Failure", class_uid * 100 + category.activity_id) == (
        event["status_id"],
        event["status"],
        event["type_uid"],
    )
    metadata = event["metadata"]
    assert ("6f1c2a8e-3d4b-4e6f-8a9b-0c1d2e3f4a5b", 41, OCSF_VERSION) == (
        metadata["uid"],
        metadata["sequence"],
        metadata["version"],
    )
    leaf = next(tag["value"] for tag in metadata["tags"] if tag["name"] == "leaf_hash")
    assert hashlib.sha256(b"leaf").digest() == base64.b64decode(leaf)
    if class_uid // 1000 in (3, 6):  # the classes with a source endpoint
        assert ("2001:db8::1", "DE") == (event["src_endpoint"]["ip"], event["src_endpoint"]["location"]["country"])
    assert "did:squid:alice" == event["unmapped"]["squid_id"]


def test_an_erased_event_validates_and_carries_no_details():
    category = TAXONOMY.classify("login", "squid", "ALLOW")
    event = ocsf_event(record("login", "squid"), category, TAXONOMY, origin="o")
    validated(event)
    assert event["unmapped"]["details"] is None and "src_endpoint" not in event


@pytest.mark.parametrize(
    ("status", "activity_id", "status_id"), [("active", 1, 1), ("resolved", 3, 4), ("dismissed", 3, 3)]
)
def test_an_alert_is_a_detection_finding_with_its_technique(status: str, activity_id: int, status_id: int):
    alert = AlertView(
        id="a1", squid_id="did:squid:alice", pattern="brute_force", technique="T1110", severity="high",
        status=status, score=0.9, description="brute force (T1110): 12 matching events", explanation={},  # type: ignore[arg-type]
        created_at_ms=1_767_600_000_000, updated_at_ms=1_767_600_000_000, reason=None, dedup_key="k",
        window_start_ms=None, occurrences=1,
    )  # fmt: skip
    event = detection_finding(alert, TAXONOMY, origin="o")
    validated(event)
    assert (2004, activity_id, status_id, 4) == (
        event["class_uid"],
        event["activity_id"],
        event["status_id"],
        event["severity_id"],
    )
    assert [{"technique": {"uid": "T1110"}}] == event["finding_info"]["attacks"]
