"""The OpenAPI document the service serves at ``/schema/openapi.json``: valid, exact in its names and answers,
compatible with the upstream contract (``tests/fixtures/upstream-contract.json``), public unless configured not
to be.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from litestar.testing import TestClient
from openapi_spec_validator import validate

from api.app import create_app
from qerberos.settings import Settings, load_settings

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "upstream-contract.json"
COMPONENTS = "#/components/schemas/"
PLAIN_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")
REQUEST_NAMES = {"AuditEventRequest", "RiskScoreRequest", "AnomalyDetectionRequest"}
DEVIATIONS = {
    ("getHealth", "200"): "the runbook's flat shape (docs/API.md, deviation 1)",
    ("getAuditEvent", "200"): "in the success envelope like every other answer (docs/API.md, deviation 2)",
}
"""Upstream responses whose schema ours does not extend, with the reason (each listed in docs/API.md)."""
OWN_BODY_ERRORS = {("getHealth", "503"), ("getHealthDetailed", "503"), ("getReadiness", "503")}
"""Error statuses answered with the route's own body (an unhealthy service says why in the health shape)."""


@pytest.fixture
def document(app_client: TestClient[Any]) -> dict[str, Any]:
    """Fetched without a token: the document is public by default."""
    response = app_client.get("/schema/openapi.json")
    assert 200 == response.status_code, response.text
    served: dict[str, Any] = response.json()
    return served


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for item in node:
            yield from _nodes(item)


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].removeprefix(COMPONENTS)]
    return schema


def test_the_served_document_is_a_valid_openapi_document(document: dict[str, Any]) -> None:
    validate(document)


def test_every_component_has_a_plain_name_and_every_reference_resolves(document: dict[str, Any]) -> None:
    names = set(document["components"]["schemas"])
    assert [] == sorted(name for name in names if not PLAIN_NAME.match(name))
    references = {node["$ref"] for node in _nodes(document) if isinstance(node.get("$ref"), str)}
    assert all(reference.startswith(COMPONENTS) for reference in references), references
    assert set() == {reference.removeprefix(COMPONENTS) for reference in references} - names
    assert [] == [node for node in _nodes(document) if "$defs" in node]
    assert {"ErrorResponse", "AuditEventCreated", "AuditEventPage", *REQUEST_NAMES} <= names


def test_every_error_answer_is_the_error_envelope_and_every_protected_operation_documents_refusals(
    document: dict[str, Any],
) -> None:
    public = {"getHealth", "getLiveness", "getReadiness", "getPublicCheckpoint", "getTile"}
    for method, path, operation in _operations(document):
        responses = operation["responses"]
        statuses = set(responses)
        if operation["operationId"] in public:
            assert [] == operation["security"], (method, path)
        else:
            assert "security" not in operation, (method, path)  # the document's: BearerAuth
            assert {"401", "429", "500", "503"} <= statuses, (method, path)
            assert "WWW-Authenticate" in responses["401"]["headers"]
            assert "Retry-After" in responses["429"]["headers"]
        for status, response in responses.items():
            if int(status) >= 400 and (operation["operationId"], status) not in OWN_BODY_ERRORS:
                assert {"$ref": COMPONENTS + "ErrorResponse"} == response["content"]["application/json"]["schema"]


def test_the_error_envelope_keeps_the_upstream_fields_and_adds_ours(document: dict[str, Any]) -> None:
    upstream = json.loads(FIXTURE.read_text())["schemas"]["ErrorResponse"]
    ours = document["components"]["schemas"]["ErrorResponse"]
    assert set(upstream["properties"]) <= set(ours["properties"])
    assert {"status", "code", "message", "details", "requestId", "retryable", "timestamp"} == set(ours["required"])


def _template(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_every_upstream_operation_is_served_under_its_operation_id_with_a_compatible_schema(
    document: dict[str, Any],
) -> None:
    contract = json.loads(FIXTURE.read_text())
    ours = {(method, _template(path)): operation for method, path, operation in _operations(document)}
    for upstream in contract["operations"]:
        key = (upstream["method"], _template(upstream["path"]))
        assert key in ours, key
        operation = ours[key]
        assert upstream["operationId"] == operation["operationId"]
        names = {parameter["name"] for parameter in operation.get("parameters", [])}
        assert {parameter["name"] for parameter in upstream["parameters"]} <= names, key
        if upstream["requestSchema"]:
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            _assert_accepts(contract["schemas"][upstream["requestSchema"]], _resolve(document, schema), document)
        for status, name in upstream["responses"].items():
            assert status in operation["responses"], (key, status)
            if name is None or (upstream["operationId"], status) in DEVIATIONS:
                continue
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert COMPONENTS + name == schema.get("$ref"), (key, status)
            _assert_extends(contract["schemas"][name], _resolve(document, schema), document, f"{name}")


def _assert_accepts(upstream: dict[str, Any], ours: dict[str, Any], document: dict[str, Any]) -> None:
    """What an upstream client sends is what ours takes: each of its fields, and no more of them required."""
    assert set(upstream["properties"]) <= set(ours["properties"])
    assert set(ours.get("required", [])) <= set(upstream.get("required", []))


def _assert_extends(upstream: dict[str, Any], ours: dict[str, Any], document: dict[str, Any], where: str) -> None:
    """What an upstream client reads is in ours: each field, recursively through objects."""
    for name, field in upstream.get("properties", {}).items():
        assert name in ours.get("properties", {}), f"{where}.{name}"
        theirs_nested = field if "$ref" not in field else {}
        if theirs_nested.get("type") == "object" and "properties" in theirs_nested:
            _assert_extends(theirs_nested, _resolve(document, ours["properties"][name]), document, f"{where}.{name}")


def test_the_yaml_document_is_the_json_one(app_client: TestClient[Any], document: dict[str, Any]) -> None:
    response = app_client.get("/schema/openapi.yaml")
    assert 200 == response.status_code
    assert document == yaml.safe_load(response.text)


def test_the_docs_page_loads_swagger_ui_from_the_service_itself(app_client: TestClient[Any]) -> None:
    page = app_client.get("/schema")
    assert 200 == page.status_code
    assert "https://" not in page.text.split("<body>")[0]  # nothing from a CDN
    for asset in re.findall(r"(?:src|href)=\"(/schema/assets/[^\"]+)\"", page.text):
        assert 200 == app_client.get(asset).status_code, asset


@pytest.fixture
def private_schema_client(api_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient[Any]]:
    monkeypatch.setenv("QERBEROS_PUBLIC_SCHEMA", "false")
    with TestClient(create_app(load_settings()), raise_server_exceptions=False) as client:
        yield client


def test_with_public_schema_off_the_page_and_documents_need_a_token(
    private_schema_client: TestClient[Any], admin_token: str
) -> None:
    for path in ("/schema", "/schema/openapi.json", "/schema/openapi.yaml", "/schema/assets/swagger-ui.css"):
        refused = private_schema_client.get(path)
        assert 401 == refused.status_code, path
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        authorised = private_schema_client.get(path, headers={"Authorization": f"Bearer {admin_token}"})
        assert 200 == authorised.status_code, path
