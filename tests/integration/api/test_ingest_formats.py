"""POST /ingest/{format}: a vendor's log appended all or nothing with the permission of /audit/batch; a bad
record is a 400 naming its line and nothing is written; /metrics counts events per class once categorised;
GET /audit and GET /alerts with format=ocsf answer OCSF events that validate against the schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from litestar.testing import TestClient
from ocsf.v1_7_0 import events as ocsf

from analytics.taxonomy import default_taxonomy
from models.alerts import AlertCandidate, AlertStore
from models.database import create_ledger_engine
from pipelines.categories import catch_up
from qerberos.settings import Settings
from tests.integration.api.conftest import METRICS_TOKEN, make_token

Client = TestClient[Any]
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "importers"


def _post(client: Client, format: str, name: str, content_type: str = "application/json") -> Any:
    body = (FIXTURES / name).read_bytes()
    return client.post(f"/ingest/{format}", content=body, headers={"Content-Type": content_type})


def test_a_log_is_imported_once_and_its_events_are_searchable(client: Client) -> None:
    response = _post(client, "cloudtrail", "cloudtrail-log-file.json")
    assert 201 == response.status_code, response.text
    assert (5, 5, "LOG_IMPORTED") == (
        response.json()["data"]["count"],
        response.json()["data"]["created"],
        response.json()["code"],
    )
    again = _post(client, "cloudtrail", "cloudtrail-log-file.json")
    assert (201, 0) == (again.status_code, again.json()["data"]["created"])
    found = client.get("/audit", params={"type": "ConsoleLogin"}).json()["data"]["events"]
    assert [("DENY", "arn:aws:iam::111122223333:user/JaneDoe")] == [
        (e["verdict"], e["actor"]["squidId"]) for e in found
    ]
    sshd = _post(client, "sshd", "sshd-auth.log", "text/plain")
    assert (201, 11) == (sshd.status_code, sshd.json()["data"]["count"])


def test_a_bad_record_is_a_400_naming_its_line_and_nothing_is_written(client: Client) -> None:
    body = (FIXTURES / "sshd-auth.log").read_bytes() + b"garbage\n"
    response = client.post("/ingest/sshd", content=body, headers={"Content-Type": "text/plain"})
    assert 400 == response.status_code
    assert 15 == response.json()["details"]["line"], response.json()
    assert 0 == client.get("/audit").json()["data"]["totalCount"]
    unknown = client.post("/ingest/syslog-ng", content=b"x", headers={"Content-Type": "text/plain"})
    assert (400, "format") == (unknown.status_code, next(iter(unknown.json()["details"])))
    empty = client.post("/ingest/o365", content=b"[]", headers={"Content-Type": "application/json"})
    assert 400 == empty.status_code


def test_importing_needs_the_write_permission(app_client: Client, api_settings: Settings) -> None:
    reader = make_token(api_settings, "reader", ["audit:read"])
    app_client.headers["Authorization"] = f"Bearer {reader}"
    assert 403 == _post(app_client, "o365", "o365-management-activity.json").status_code


def test_metrics_count_events_per_class_and_those_not_yet_classified(client: Client, api_settings: Settings) -> None:
    assert 201 == _post(client, "o365", "o365-management-activity.json").status_code
    metrics = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    before = client.get("/metrics", headers=metrics).text
    assert "qerberos_events_unclassified 5.0" in before
    engine = create_ledger_engine(api_settings.database_url)
    try:
        assert 5 == catch_up(engine, default_taxonomy())
    finally:
        engine.dispose()
    after = client.get("/metrics", headers=metrics).text
    assert "qerberos_events_unclassified 0.0" in after
    assert 'qerberos_events_by_class{class_name="authentication",class_uid="3002"} 2.0' in after
    assert 'qerberos_events_by_class{class_name="other",class_uid="0"} 0.0' in after


def test_get_audit_as_ocsf_gives_each_event_of_its_class_with_its_ledger_coordinates(client: Client) -> None:
    assert 201 == _post(client, "azuread-signin", "azuread-signins-graph.json").status_code
    response = client.get("/audit", params={"format": "ocsf", "limit": 3})
    assert (200, "application/x-ndjson", "4") == (
        response.status_code,
        response.headers["content-type"].split(";")[0],
        response.headers["x-total-count"],
    )
    events = [json.loads(line) for line in response.text.splitlines()]
    assert [3, 2, 1] == [e["metadata"]["sequence"] for e in events]  # newest first, as the JSON page
    for event in events:
        ocsf.Authentication.model_validate(event)
        leaf = next(tag["value"] for tag in event["metadata"]["tags"] if tag["name"] == "leaf_hash")
        assert leaf == client.get(f"/audit/{event['metadata']['uid']}").json()["data"]["leafHash"]
    assert ["Failure", "Other", "Failure"] == [e["status"] for e in events]
    assert response.headers["x-next-cursor"]


def test_alerts_as_ocsf_detection_findings(client: Client, api_settings: Settings) -> None:
    engine = create_ledger_engine(api_settings.database_url)
    try:
        store = AlertStore(engine)
        candidate = AlertCandidate(
            squid_id="victim@contoso.com", pattern="brute_force", technique="T1110", severity="high", score=0.9,
            description="brute force (T1110): 12 matching events", explanation={}, window_start_ms=None,
        )  # fmt: skip
        store.raise_alert(candidate, now_ms=1_767_600_000_000)
    finally:
        engine.dispose()
    response = client.get("/alerts", params={"format": "ocsf"})
    (finding,) = [json.loads(line) for line in response.text.splitlines()]
    ocsf.DetectionFinding.model_validate(finding)
    assert (2004, "T1110") == (finding["class_uid"], finding["finding_info"]["attacks"][0]["technique"]["uid"])
