"""``POST /anomaly/detect`` on events and feature rows, alert filters, and bad input in the error envelope."""

from __future__ import annotations

import pytest

from pipelines.live_detection import LiveDetection
from pipelines.model_registry import ChampionWatcher
from tests.integration.detection_live.test_end_to_end import client, settings, token  # noqa: F401

NORMAL = {"event_count": 3, "distinct_refs": 2, "distinct_layers": 1, "deny_ratio": 0.0, "warn_ratio": 0.0,
          "off_hours_share": 0.0, "new_ref_share": 0.0, "rate_vs_baseline": 1.0, "peer_deviation": 0.0,
          "fail_then_success": 0, "new_country_count": 0, "new_ip_count": 0}  # fmt: skip


@pytest.fixture
def detection(client, tracking_uri):  # noqa: F811
    ledger = client.app.state.service.require_ledger()
    detection = LiveDetection(ledger, ChampionWatcher(tracking_uri), tracking_uri=tracking_uri)
    detection.refresh_model()
    client.app.state.detection = detection
    return detection


def test_detect_scores_feature_rows_and_flags_the_odd_one(client, settings, detection):  # noqa: F811
    headers = token(settings, "ds", ["anomaly:detect"])
    odd = {**NORMAL, "event_count": 400, "distinct_refs": 380, "deny_ratio": 0.9, "new_ref_share": 1.0,
           "rate_vs_baseline": 80.0, "new_country_count": 2, "new_ip_count": 3, "squidId": "did:squid:odd"}  # fmt: skip
    response = client.post("/anomaly/detect", json={"data": {"features": [NORMAL, odd]}}, headers=headers)
    assert 200 == response.status_code, response.text
    data = response.json()["data"]
    assert ["did:squid:odd"] == [a["context"]["squidId"] for a in data["anomalies"]]
    assert 1 == data["summary"]["totalAnomalies"]
    assert 0 <= data["summary"]["averageConfidence"] <= 1
    assert "1.0.0" == data["modelInfo"]["version"]
    version_two = client.post("/anomaly/detect", json={"data": {"features": [odd]}, "model": "2", "threshold": 0.5},
                              headers=headers)  # fmt: skip
    assert ("2.0.0", 1) == (version_two.json()["data"]["modelInfo"]["version"],
                            version_two.json()["data"]["summary"]["totalAnomalies"])  # fmt: skip


def test_detect_on_events_reports_rule_patterns(client, settings, detection):  # noqa: F811
    headers = token(settings, "ds", ["anomaly:detect"])
    events = [
        {"type": "login", "ref": "identity:v", "actor": {"squidId": "did:squid:v"}, "layer": "squid", "verdict": "DENY",
         "details": {"ip": "95.24.1.1", "country": "RU"}, "timestamp": f"2026-01-05T10:00:{n:02d}Z"}
        for n in range(12)
    ]  # fmt: skip
    response = client.post("/anomaly/detect", json={"data": {"events": events}}, headers=headers)
    assert 200 == response.status_code, response.text
    patterns = [a for a in response.json()["data"]["anomalies"] if a["type"] == "pattern"]
    assert [("brute_force", "T1110")] == [(a["context"]["rule"], a["context"]["technique"]) for a in patterns]


@pytest.mark.parametrize(
    "body",
    [
        {"data": {}},
        {"data": {"features": [{"event_count": "many"}]}},
        {"data": {"events": [{"type": "login"}]}},
        {"data": {"features": [NORMAL]}, "threshold": 2},
        {"data": {"features": [NORMAL]}, "model": "latest"},
    ],
)
def test_bad_detect_requests_answer_400_in_the_error_envelope(client, settings, detection, body):  # noqa: F811
    response = client.post("/anomaly/detect", json=body, headers=token(settings, "ds", ["anomaly:detect"]))
    assert (400, "error", "VALIDATION_ERROR") == (response.status_code, response.json()["status"],
                                                  response.json()["code"])  # fmt: skip


def test_alert_routes_need_their_permissions_and_validate_filters(client, settings, detection):  # noqa: F811
    reader = token(settings, "reader", ["alerts:read"])
    assert (
        200
        == client.get("/anomaly/alerts", params={"severity": "high", "status": "active"}, headers=reader).status_code
    )
    assert 400 == client.get("/alerts", params={"severity": "severe"}, headers=reader).status_code
    assert 400 == client.get("/alerts", params={"limit": 0}, headers=reader).status_code
    missing = "00000000-0000-4000-8000-000000000000"
    assert (
        403
        == client.patch(f"/alerts/{missing}", json={"status": "resolved", "reason": "x"}, headers=reader).status_code
    )
    manager = token(settings, "manager", ["alerts:manage"])
    assert (
        404
        == client.patch(f"/alerts/{missing}", json={"status": "resolved", "reason": "x"}, headers=manager).status_code
    )
    assert (
        400 == client.patch(f"/alerts/{missing}", json={"status": "active", "reason": "x"}, headers=manager).status_code
    )
    assert 401 == client.get("/alerts").status_code
