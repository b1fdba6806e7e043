"""The risk routes over a real ledger (SQLite and PostgreSQL): contract shapes, every bad input named,
history, level changes recorded in the ledger as ``q.qerberos.risk.scored.v1``, determinism, ranking.

The app here is a minimal Litestar app with ``RiskController``, the project's error handlers and a guard
that enforces ``opt["permission"]`` from a test header (the main app's wiring is the API core's).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.testing import TestClient

from analytics.risk import OperationContext
from api.controllers.risk import RiskController
from api.errors import EXCEPTION_HANDLERS
from models.alerts import AlertCandidate, AlertStore
from models.ledger import Ledger
from models.records import Actor, NewEvent, SearchQuery
from pipelines.risk import EVENT_NAME, LEDGER_TYPE, build_risk_service
from pipelines.risk.level_events import schema as risk_scored_schema
from qerberos.errors import PermissionDeniedError
from tests.integration.api.contract import json_contract, openapi_component

T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
T0_MS = int(T0.timestamp() * 1000)
ALICE, BOB = "did:squid:alice", "did:squid:bob"


async def _header_permissions(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    wanted = handler.opt.get("permission")
    granted = set(connection.headers.get("x-test-permissions", "").split(","))
    if wanted is not None and wanted not in granted:
        raise PermissionDeniedError(f"permission {wanted} is not granted", details={"permission": wanted})


def _events(identity: str, count: int, *, verdict: str = "ALLOW", type_: str = "login", start_min: int = 0,
            country: str = "DE", device: str = "web") -> list[NewEvent]:  # fmt: skip
    return [
        NewEvent(
            type=type_,
            ref=f"identity:{identity}",
            actor=Actor(identity),
            layer="squid",
            verdict=verdict,  # type: ignore[arg-type]
            source="test",
            details={"ip": "84.128.1.1", "country": country, "device": device},
            occurred_at=T0 + dt.timedelta(minutes=start_min + n),
        )
        for n in range(count)
    ]


@pytest.fixture
def client(ledger: Ledger) -> Iterator[TestClient[Any]]:
    app = Litestar(route_handlers=[RiskController], exception_handlers=EXCEPTION_HANDLERS, guards=[_header_permissions])  # type: ignore[arg-type]
    app.state.risk = build_risk_service(ledger.engine, ledger)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        test_client.headers["x-test-permissions"] = "risk:read,risk:calculate"
        yield test_client


def _level_events(ledger: Ledger) -> list[Any]:
    return list(ledger.search(SearchQuery(type=LEDGER_TYPE, limit=100)).records)


def test_get_answers_the_upstream_shape_and_the_factors_add_up(client: TestClient[Any], ledger: Ledger) -> None:
    ledger.append(_events(ALICE, 50, start_min=-24 * 60 * 3) + _events(ALICE, 4, verdict="DENY", start_min=-10))
    response = client.get(f"/risk-score/{ALICE}")
    assert 200 == response.status_code, response.text
    openapi_component("RiskScoreResponse").validate(response.json())
    data = response.json()["data"]
    json_contract("risk-score.schema.json").validate(data)
    assert data["score"] == pytest.approx(sum(f["weight"] * f["value"] for f in data["factors"]), abs=1e-12)
    assert data["score"] == pytest.approx(0.1 * 4 / 10)  # four failed sign-ins in the window, nothing else
    assert "2026-03-02T11:53:00.000Z" == data["timestamp"]  # the newest event (11:53), rounded to the minute
    assert "2026-03-02T12:08:00.000Z" == data["expiresAt"]


def test_post_scores_an_operation_with_its_context(client: TestClient[Any], ledger: Ledger) -> None:
    ledger.append(_events(ALICE, 5, start_min=-600))
    body = {"identity": ALICE, "operation": "admin_operation", "context": {"country": "RU", "deviceId": "curl"}}
    response = client.post("/risk-score", json=body)
    assert 200 == response.status_code, response.text
    data = response.json()["data"]
    json_contract("risk-score.schema.json").validate(data)
    values = {f["name"]: (f["weight"], f["value"]) for f in data["factors"]}
    assert (0.05, 1.0) == values["new_country"] and (0.04, 1.0) == values["unknown_device"]
    assert values["operation_criticality"] == (pytest.approx(0.5), pytest.approx(0.09))
    assert data["score"] == pytest.approx(0.09 * 1.5)


def test_post_with_selected_factors(client: TestClient[Any], ledger: Ledger) -> None:
    ledger.append(_events(ALICE, 3, verdict="DENY"))
    response = client.post("/risk-score", json={"identity": ALICE, "factors": ["failed_authentications"]})
    assert [{"name": "failed_authentications", "weight": 1.0, "value": 0.3}] == response.json()["data"]["factors"]
    assert ("medium", 0.3) == (response.json()["data"]["level"], response.json()["data"]["score"])


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ({}, {"identity": "required"}),
        ({"identity": ""}, {"identity": "must not be empty"}),
        ({"identity": "x" * 101}, {"identity": "at most 100 characters"}),
        (
            {"identity": 5, "operation": ["pay"], "context": "here", "factors": "all", "extra": 1},
            {"identity": "must be a string", "operation": "must be a string", "context": "must be an object",
             "factors": "must be an array of factor names", "extra": "unknown field"},
        ),
        ({"identity": ALICE, "context": {"ipAddress": 1, "country": ""}},
         {"context.ipAddress": "must be a non-empty string of at most 200 characters",
          "context.country": "must be a non-empty string of at most 200 characters"}),
    ],
)  # fmt: skip
def test_bad_requests_name_every_failing_field(client: TestClient[Any], body: Any, details: dict[str, str]) -> None:
    response = client.post("/risk-score", json=body)
    assert (400, "VALIDATION_ERROR") == (response.status_code, response.json()["code"])
    assert details == response.json()["details"]


def test_unknown_factor_names_are_a_validation_error_naming_them(client: TestClient[Any]) -> None:
    response = client.post("/risk-score", json={"identity": ALICE, "factors": ["deny_events", "karma", "vibes"]})
    assert (400, "VALIDATION_ERROR") == (response.status_code, response.json()["code"])
    assert response.json()["details"]["factors"].startswith("unknown: karma, vibes; known: active_alerts")


def test_malformed_json_and_bad_queries(client: TestClient[Any]) -> None:
    response = client.post("/risk-score", content=b"{nope", headers={"content-type": "application/json"})
    assert (400, "VALIDATION_ERROR") == (response.status_code, response.json()["code"])
    response = client.get("/risk-score", params={"level": "severe", "limit": "0"})
    assert {"level": "must be one of low, medium, high, critical", "limit": "must be an integer from 1 to 1000"} == (
        response.json()["details"]
    )
    assert 400 == client.get(f"/risk-score/{'x' * 101}").status_code


def test_permissions_are_declared_per_route(client: TestClient[Any]) -> None:
    client.headers["x-test-permissions"] = "risk:read"
    assert 403 == client.post("/risk-score", json={"identity": ALICE}).status_code
    assert 200 == client.get(f"/risk-score/{ALICE}").status_code
    client.headers["x-test-permissions"] = "risk:calculate"
    assert 403 == client.get(f"/risk-score/{ALICE}").status_code
    assert 403 == client.get("/risk-score").status_code


def test_same_ledger_same_answer_and_one_history_row(client: TestClient[Any], ledger: Ledger) -> None:
    ledger.append(_events(ALICE, 7, verdict="DENY", type_="download"))
    first, second = client.get(f"/risk-score/{ALICE}").json()["data"], client.get(f"/risk-score/{ALICE}").json()["data"]
    assert first == second
    service = client.app.state.risk
    assert 1 == len(service.store.history(ALICE))
    ledger.append(_events(ALICE, 1, verdict="DENY", type_="download", start_min=30))
    assert client.get(f"/risk-score/{ALICE}").json()["data"]["score"] > first["score"]
    assert [0.04, 0.035] == [round(r.score, 6) for r in service.store.history(ALICE)]


def test_level_changes_are_appended_to_the_ledger_once_and_fade_when_alerts_are_resolved(
    client: TestClient[Any], ledger: Ledger
) -> None:
    ledger.append(_events(BOB, 3))
    alerts = AlertStore(ledger.engine)
    client.app.state.risk = build_risk_service(ledger.engine, ledger)  # reads this alert store's tables
    assert "low" == client.get(f"/risk-score/{BOB}").json()["data"]["level"]
    assert [] == _level_events(ledger)

    for pattern in ("brute_force", "password_spraying", "impossible_travel", "anomaly"):
        alerts.raise_alert(AlertCandidate(BOB, pattern, "T1110", "critical", 0.95, "test", {}), now_ms=T0_MS)
    ledger.append(_events(BOB, 1, start_min=5))  # the ledger moves on: a new "now"
    data = client.get(f"/risk-score/{BOB}").json()["data"]
    assert "critical" == data["level"], data  # an active critical alert: at least critical
    client.get(f"/risk-score/{BOB}")  # the same assessment again: no second event
    (event,) = _level_events(ledger)
    payload = dict(event.details)
    jsonschema.Draft7Validator(risk_scored_schema()).validate(payload)
    assert (str(event.id), BOB, "critical", "low", "rising") == (
        payload["eventId"], payload["identity"], payload["level"], payload["previousLevel"], payload["direction"]
    )  # fmt: skip
    assert ("qerberos", "WARN", f"identity:{BOB}") == (event.layer, event.verdict, event.ref)
    assert EVENT_NAME == "q.qerberos.risk.scored.v1"

    ranking = client.get("/risk-score", params={"level": "medium", "limit": 5}).json()["data"]
    assert [BOB] == [item["identity"] for item in ranking["items"]]

    for alert in alerts.active_for(BOB):
        alerts.set_status(alert.id, "resolved", "handled")
    ledger.append(_events(BOB, 1, start_min=7))
    data = client.get(f"/risk-score/{BOB}").json()["data"]
    assert ("low", 0.0) == (data["level"], data["score"])
    falling = [dict(e.details) for e in _level_events(ledger)]
    assert [("low", "critical", "falling"), ("critical", "low", "rising")] == [
        (p["level"], p["previousLevel"], p["direction"]) for p in falling
    ]
    assert [] == client.get("/risk-score", params={"level": "medium"}).json()["data"]["items"]


def test_a_source_address_is_an_entity_with_a_risk_score(client: TestClient[Any], ledger: Ledger) -> None:
    """A spray's alert belongs to its address (``ip:<address>``), and the address has a risk score of its own."""
    ledger.append(_events(BOB, 2))
    client.app.state.risk = build_risk_service(ledger.engine, ledger)
    evidence = {"evidence": {"ip": "203.0.113.9", "accounts": [ALICE, BOB], "accountCount": 49}}
    spray = AlertCandidate("ip:203.0.113.9", "password_spraying", "T1110", "high", 0.9, "spray", evidence)
    AlertStore(ledger.engine).raise_alert(spray, now_ms=T0_MS)
    data = client.get("/risk-score/ip:203.0.113.9").json()["data"]
    assert ("ip:203.0.113.9", "high") == (data["identity"], data["level"])
    assert "low" == client.get(f"/risk-score/{BOB}").json()["data"]["level"]


def test_ranking_lists_the_riskiest_first(client: TestClient[Any], ledger: Ledger) -> None:
    ledger.append(_events(ALICE, 2, verdict="DENY") + _events(BOB, 6, verdict="DENY") + _events("did:squid:c", 1))
    for identity in (ALICE, BOB, "did:squid:c"):
        client.get(f"/risk-score/{identity}")
    client.post("/risk-score", json={"identity": "did:squid:c", "operation": "payment", "context": {"country": "RU"}})
    items = client.get("/risk-score", params={"limit": 2}).json()["data"]["items"]
    assert [BOB, ALICE] == [item["identity"] for item in items]
    assert [0.06, 0.02] == [round(item["score"], 6) for item in items]


def test_operation_assessments_do_not_move_the_identity_level(client: TestClient[Any], ledger: Ledger) -> None:
    ledger.append(_events(ALICE, 9, verdict="DENY"))
    service = client.app.state.risk
    result = service.assess(ALICE, factors=["failed_authentications", "new_country"], operation="payment",
                            access=OperationContext(country="RU"))  # fmt: skip
    assert result.level in ("high", "critical")
    assert service.store.current(ALICE) is None
    assert [] == _level_events(ledger)
