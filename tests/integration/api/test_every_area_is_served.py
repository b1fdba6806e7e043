"""The assembled service answers every area of the upstream contract, in the upstream shapes.

Each area has its own detailed tests; these prove the real app wires them in, behind the real security.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from litestar.testing import TestClient

from tests.integration.api.conftest import event_body
from tests.integration.api.contract import contract_schema, upstream


def test_risk_score_answers_in_the_upstream_shape(client: TestClient[Any]) -> None:
    assert 201 == client.post("/audit/batch", json=[event_body(n) for n in range(9)]).status_code
    answer = client.post("/risk-score", json={"identity": "did:squid:user1", "operation": "payment"})
    assert 200 == answer.status_code, answer.text
    data = answer.json()["data"]
    assert pytest.approx(data["score"]) == sum(f["weight"] * f["value"] for f in data["factors"])
    assert data["level"] in {"low", "medium", "high", "critical"}
    assert 200 == client.get("/risk-score/did:squid:user1").status_code
    unknown = client.post("/risk-score", json={"identity": "did:squid:user1", "factors": ["no_such_factor"]})
    assert ("VALIDATION_ERROR", True) == (unknown.json()["code"], "no_such_factor" in unknown.text)


@pytest.mark.parametrize("path", ["/alerts", "/anomaly/alerts"])
def test_alerts_are_served_at_both_upstream_paths(client: TestClient[Any], path: str) -> None:
    answer = client.get(path, params={"severity": "high", "status": "active", "limit": 5})
    assert (200, 0) == (answer.status_code, answer.json()["data"]["totalCount"]), answer.text


@pytest.mark.live_detection
def test_anomaly_detection_answers_with_a_summary(client: TestClient[Any]) -> None:
    answer = client.post("/anomaly/detect", json={"data": {"events": [event_body(n) for n in range(3)]}})
    assert answer.status_code in {200, 503}, answer.text  # 503 DEPENDENCY_UNAVAILABLE: no champion trained yet
    if answer.status_code == 200:
        assert {"anomalies", "summary"} <= set(answer.json()["data"])
    else:
        assert "DEPENDENCY_UNAVAILABLE" == answer.json()["code"]


def test_compliance_reports_are_listed(client: TestClient[Any]) -> None:
    answer = client.get("/compliance/reports")
    assert 200 == answer.status_code, answer.text


def test_new_areas_refuse_callers_without_their_permission(app_client: TestClient[Any], api_settings: Any) -> None:
    from tests.integration.api.conftest import make_token

    app_client.headers["Authorization"] = f"Bearer {make_token(api_settings, 'reader', ['audit:read'])}"
    for method, path, body in (
        ("POST", "/risk-score", {"identity": "did:squid:x"}),
        ("GET", "/alerts", None),
        ("POST", "/anomaly/detect", {"data": {"events": []}}),
        ("GET", "/compliance/reports", None),
    ):
        answer = app_client.request(method, path, json=body)
        assert (403, "QONSENT_DENIED") == (answer.status_code, answer.json()["code"]), (path, answer.text)


def test_audit_event_schema_of_the_upstream_accepts_our_stored_events(client: TestClient[Any]) -> None:
    created = client.post("/audit", json=event_body(1)).json()["data"]
    stored = client.get(f"/audit/{created['id']}").json()["data"]
    upstream = {key: stored[key] for key in contract_schema("audit-event.schema.json")["properties"] if key in stored}
    jsonschema.validate(upstream, contract_schema("audit-event.schema.json"))


def test_every_upstream_operation_has_a_route_with_its_method(app_client: TestClient[Any]) -> None:
    """Each method and path of the upstream openapi.yaml (parameter names aside) is a route of the app."""
    routes = {
        (method, re.sub(r"\{[^}]*\}", "{}", route.path_format))
        for route in app_client.app.routes
        for method in getattr(route, "methods", ())
    }
    operations = {(op["method"], re.sub(r"\{[^}]*\}", "{}", op["path"])) for op in upstream()["operations"]}
    assert 9 == len(operations)
    assert set() == operations - routes
