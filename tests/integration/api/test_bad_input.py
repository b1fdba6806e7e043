"""Every bad input gets its contract code in the error envelope: never a 500, never a stack trace."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from tests.integration.api.conftest import MAX_BODY_BYTES, event_body
from tests.integration.api.contract import ISO_MS, assert_valid, openapi_component

Client = TestClient[Any]
JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}


def _deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    for _ in range(levels):
        node = {"n": node}
    return node


POST_AUDIT_CASES = [
    ("malformed JSON", b'{"type": ', JSON, 400, "VALIDATION_ERROR", "body"),
    ("empty body", b"", JSON, 400, "VALIDATION_ERROR", None),
    ("array instead of object", b"[]", JSON, 400, "VALIDATION_ERROR", None),
    ("wrong type", msgspec.json.encode(event_body(type=5)), JSON, 400, "VALIDATION_ERROR", "type"),
    ("missing actor", msgspec.json.encode({**event_body(), "actor": None}), JSON, 400, "VALIDATION_ERROR", "actor"),
    ("unknown field", msgspec.json.encode(event_body(colour="red")), JSON, 400, "VALIDATION_ERROR", "colour"),
    ("bad verdict", msgspec.json.encode(event_body(verdict="OK")), JSON, 400, "VALIDATION_ERROR", "verdict"),
    ("id not a UUID", msgspec.json.encode(event_body(id="42")), JSON, 400, "VALIDATION_ERROR", "id"),
    (
        "bad timestamp",
        msgspec.json.encode(event_body(timestamp="yesterday")),
        JSON,
        400,
        "VALIDATION_ERROR",
        "timestamp",
    ),
    ("details too deep", msgspec.json.encode(event_body(details=_deep(20))), JSON, 400, "VALIDATION_ERROR", "details"),
    (
        "details too large",
        msgspec.json.encode(event_body(details={"x": "a" * 70_000})),
        JSON,
        413,
        "PAYLOAD_TOO_LARGE",
        "details",
    ),
    ("body over the bound", b"[" + b" " * MAX_BODY_BYTES + b"]", JSON, 413, "PAYLOAD_TOO_LARGE", None),
]


@pytest.mark.parametrize(
    ("body", "headers", "status", "code", "field"),
    [case[1:] for case in POST_AUDIT_CASES],
    ids=[case[0] for case in POST_AUDIT_CASES],
)
def test_post_audit_refuses_bad_input_with_its_code(
    client: Client, body: bytes, headers: dict[str, str], status: int, code: str, field: str | None
) -> None:
    response = client.post("/audit", content=body, headers=headers)

    _assert_error(response, status, code)
    if field is not None:
        assert any(key.split(".")[0] == field for key in response.json()["details"]), response.json()["details"]


def test_unknown_fields_are_all_named(client: Client) -> None:
    body = event_body(colour="red", size=3)
    body["actor"] = {"squidId": "did:squid:a", "nickname": "x"}
    response = client.post("/audit", json=body)

    _assert_error(response, 400, "VALIDATION_ERROR")
    assert {"colour", "size", "actor.nickname"} <= set(response.json()["details"])


def test_idempotency_key_that_contradicts_the_id_is_refused(client: Client) -> None:
    response = client.post(
        "/audit", json=event_body(id=str(uuid.uuid4())), headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    _assert_error(response, 400, "VALIDATION_ERROR")


BATCH_CASES = [
    ("not an array", b'{"a": 1}', JSON, 400, "VALIDATION_ERROR"),
    ("empty array", b"[]", JSON, 400, "VALIDATION_ERROR"),
    ("malformed array", b"[{", JSON, 400, "VALIDATION_ERROR"),
    ("bad NDJSON line", msgspec.json.encode(event_body()) + b"\n{oops\n", NDJSON, 400, "VALIDATION_ERROR"),
    ("empty NDJSON", b"\n\n", NDJSON, 400, "VALIDATION_ERROR"),
    ("unsupported content type", b"<events/>", {"Content-Type": "application/xml"}, 400, "VALIDATION_ERROR"),
]


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"), [case[1:] for case in BATCH_CASES], ids=[case[0] for case in BATCH_CASES]
)
def test_batch_refuses_bad_input_with_its_code(
    client: Client, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    _assert_error(client.post("/audit/batch", content=body, headers=headers), status, code)


def test_bad_ndjson_line_is_keyed_by_its_index(client: Client) -> None:
    lines = [msgspec.json.encode(event_body(n)) for n in range(3)]
    lines[2] = b'{"type": "x"}'
    response = client.post("/audit/batch", content=b"\n".join(lines), headers=NDJSON)

    _assert_error(response, 400, "VALIDATION_ERROR")
    assert ["2"] == list(response.json()["details"])


GET_CASES = [
    ("/audit?limit=0", 400, "VALIDATION_ERROR"),
    ("/audit?limit=1001", 400, "VALIDATION_ERROR"),
    ("/audit?limit=ten", 400, "VALIDATION_ERROR"),
    ("/audit?offset=-1", 400, "VALIDATION_ERROR"),
    ("/audit?verdict=MAYBE", 400, "VALIDATION_ERROR"),
    ("/audit/search?startDate=last-week", 400, "VALIDATION_ERROR"),
    ("/audit?startDate=2026-02-01T00:00:00Z&endDate=2026-01-01T00:00:00Z", 400, "VALIDATION_ERROR"),
    ("/audit?cursor=not-a-cursor", 400, "VALIDATION_ERROR"),
    ("/audit/not-a-uuid", 400, "VALIDATION_ERROR"),
    (f"/audit/{uuid.uuid4()}", 404, "NOT_FOUND"),
    (f"/ledger/proof/inclusion/{uuid.uuid4()}", 404, "NOT_FOUND"),
    ("/ledger/proof/inclusion/not-a-uuid", 400, "VALIDATION_ERROR"),
    ("/ledger/proof/inclusion/99", 400, "VALIDATION_ERROR"),
    ("/ledger/proof/inclusion/0?treeSize=0", 400, "VALIDATION_ERROR"),
    ("/ledger/proof/inclusion/0?treeSize=99", 400, "VALIDATION_ERROR"),
    ("/ledger/proof/consistency?first=2&second=1", 400, "VALIDATION_ERROR"),
    ("/ledger/proof/consistency?first=1", 400, "VALIDATION_ERROR"),
    ("/ledger/proof/consistency?first=1&second=99", 400, "VALIDATION_ERROR"),
    ("/ledger/proof/consistency?first=-1&second=1", 400, "VALIDATION_ERROR"),
    ("/no/such/route", 404, "NOT_FOUND"),
]


@pytest.mark.parametrize(("path", "status", "code"), GET_CASES, ids=[case[0] for case in GET_CASES])
def test_reads_refuse_bad_input_with_its_code(client: Client, path: str, status: int, code: str) -> None:
    client.post("/audit/batch", json=[event_body(n) for n in range(2)])
    _assert_error(client.get(path), status, code)


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/audit?startDate=last-week", "startDate"),
        ("/audit?endDate=2026-13-01", "endDate"),
        ("/ledger/proof/inclusion/0?treeSize=many", "treeSize"),
        ("/audit?limit=ten", "limit"),
    ],
)
def test_a_bad_parameter_is_named_as_the_caller_sent_it(client: Client, path: str, parameter: str) -> None:
    response = client.get(path)

    _assert_error(response, 400, "VALIDATION_ERROR")
    assert [parameter] == list(response.json()["details"])


def test_unknown_method_is_405(client: Client) -> None:
    _assert_error(client.delete("/audit"), 405, "METHOD_NOT_ALLOWED")


def _assert_error(response: Any, status: int, code: str) -> None:
    assert (status, code) == (response.status_code, response.json()["code"]), response.text
    body = response.json()
    assert_valid(openapi_component("ErrorResponse"), body)
    assert {"status", "code", "message", "details", "requestId", "retryable", "timestamp"} == set(body)
    assert response.headers["x-request-id"] == body["requestId"]
    assert ISO_MS.match(body["timestamp"])
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
