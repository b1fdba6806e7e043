"""Every bad input gets its contract code in the error envelope: never a 500, never a stack trace."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from analytics.window_features import FEATURE_COLUMNS
from tests.integration.api.conftest import MAX_BODY_BYTES, event_body
from tests.integration.api.contract import ISO_MS, assert_valid, openapi_component

Client = TestClient[Any]
JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}


def _cursor(seq: int) -> str:
    """A cursor as the service spells one (``models.ledger._encode_cursor``), at any sequence number."""
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


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
    ("unsupported content type", b"<events/>", {"Content-Type": "application/xml"}, 415, "UNSUPPORTED_MEDIA_TYPE"),
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


OUT_OF_RANGE = [  # each of these answered 500, the cause only in the log
    (f"/ledger/proof/inclusion/0?treeSize={2**64}", "treeSize"),
    (f"/ledger/proof/consistency?first=1&second={2**64}", "second"),
    (f"/ledger/proof/inclusion/{'1' * 5000}", "reference"),
    (f"/audit?cursor={_cursor(2**63)}", "cursor"),
    ("/audit?endDate=0001-01-01T00:00:00%2B14:00", "endDate"),
    ("/audit/search?startDate=9999-12-31T23:59:59-14:00", "startDate"),
    ("/compliance/report?endDate=0001-01-01T00:00:00%2B14:00", "endDate"),
    ("/compliance/report?startDate=0001-01-01T00:00:00%2B14:00&endDate=2026-01-01", "startDate"),
    ("/compliance/report?endDate=0001-01-02", "endDate"),
    (f"/ledger/proof/inclusion/{2**64}", "reference"),
    # read as 3 (str.isdecimal), Arabic-Indic and superscript three
    ("/ledger/proof/inclusion/%D9%A3", "reference"),
    ("/ledger/proof/inclusion/%C2%B3", "reference"),
]


def test_numbers_and_dates_out_of_range_are_400_naming_the_parameter(client: Client) -> None:
    client.post("/audit/batch", json=[event_body(n) for n in range(5)])

    for path, parameter in OUT_OF_RANGE:
        response = client.get(path)

        assert (400, [parameter]) == (response.status_code, list(response.json()["details"])), (path, response.text)
        _assert_error(response, 400, "VALIDATION_ERROR")
    assert 200 == client.get("/ledger/proof/inclusion/3").status_code
    assert 200 == client.get(f"/audit?cursor={_cursor(3)}").status_code
    assert 200 == client.get("/audit?endDate=0001-01-01T14:00:00%2B14:00").status_code


NESTING_ROUTES = [
    ("/audit", JSON, lambda inner: b'{"type": "a", "details": {"x": ' + inner + b"}}"),
    ("/audit", JSON, lambda inner: inner),
    ("/audit/batch", JSON, lambda inner: b"[" + inner + b"]"),
    ("/audit/batch", NDJSON, lambda inner: msgspec.json.encode(event_body()) + b"\n" + inner),
    ("/risk-score", JSON, lambda inner: b'{"identity": "a", "context": ' + inner + b"}"),
    ("/anomaly/detect", JSON, lambda inner: b'{"data": {"events": [' + inner + b"]}}"),
    ("/alerts/some-id", JSON, lambda inner: b'{"status": "resolved", "reason": "r", "x": ' + inner + b"}"),
]


@pytest.mark.live_detection
def test_a_model_version_is_ascii_digits(client: Client) -> None:
    """ "²" passed str.isdigit() and reached the model registry, which failed on it: a 503."""
    features = [dict.fromkeys(FEATURE_COLUMNS, 1.0)]
    for model in ("\u00b2", "\u0663", "9" * 5000):
        response = client.post("/anomaly/detect", json={"model": model, "data": {"features": features}})

        assert (400, "model") == (response.status_code, next(iter(response.json()["details"]))), response.text


def test_json_nested_a_thousand_levels_or_more_is_refused_on_every_route_that_reads_json(client: Client) -> None:
    for levels in (1_000, 100_000):
        for path, headers, wrap in NESTING_ROUTES:
            body = wrap(b"[" * levels + b"]" * levels)
            method = client.patch if path.startswith("/alerts") else client.post

            response = method(path, content=body, headers=headers)

            assert 400 == response.status_code, (path, levels, response.text)
            _assert_error(response, 400, "VALIDATION_ERROR")
    assert 0 == client.get("/audit").json()["data"]["totalCount"]


def test_a_body_that_is_not_json_by_its_content_type_is_415(client: Client) -> None:
    cases = [
        ("/audit", None),
        ("/audit", "text/plain"),
        ("/audit", "application/x-ndjson"),
        ("/audit", "application/x-www-form-urlencoded"),
        ("/audit/batch", None),
        ("/audit/batch", "text/plain"),
    ]
    for path, content_type in cases:
        body = msgspec.json.encode(event_body() if path == "/audit" else [event_body()])
        headers = {} if content_type is None else {"Content-Type": content_type}

        response = client.post(path, content=body, headers=headers)

        assert 415 == response.status_code, (path, content_type, response.text)
        _assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
        assert ["Content-Type"] == list(response.json()["details"])
    assert 0 == client.get("/audit").json()["data"]["totalCount"]
    with_parameters = {"Content-Type": "Application/JSON; charset=utf-8"}
    assert 201 == client.post("/audit", content=msgspec.json.encode(event_body()), headers=with_parameters).status_code


_VALID = msgspec.json.encode(event_body()).decode()
DUPLICATES = [
    _VALID.replace('{"type":"access",', '{"type":"access","type":"deny",', 1),
    _VALID.replace('"squidId":"did:squid:user0"', '"squidId":"did:squid:user0","squidId":"x"', 1),
    _VALID.replace('"operation":"download"', '"operation":"download","operation":"delete"', 1),
]


def test_a_member_given_twice_is_refused_on_every_write_route(client: Client) -> None:
    for body in DUPLICATES:
        assert body != _VALID
        single = client.post("/audit", content=body, headers=JSON)
        batch = client.post("/audit/batch", content=f"[{_VALID},{body}]", headers=JSON)
        lines = client.post("/audit/batch", content=f"{_VALID}\n{body}\n", headers=NDJSON)

        for response in (single, batch, lines):
            _assert_error(response, 400, "VALIDATION_ERROR")
            assert "appears more than once" in str(response.json()["details"]), response.text
    assert 0 == client.get("/audit").json()["data"]["totalCount"]


UNSTORABLE = [
    (event_body(ref="a\u0000b"), "ref", "holds a NUL character"),
    (event_body(details={"note": "a\u0000b"}), "details.note", "holds a NUL character"),
    (event_body(details={"a\u0000b": 1}), "details.a\u0000b", "holds a NUL character"),
    (event_body(details={"list": ["ok", "\u0000"]}), "details.list.1", "holds a NUL character"),
    (event_body(actor={"squidId": "did:squid:\u0000"}), "actor.squidId", "holds a NUL character"),
    (event_body(type="a\ud800"), "type", "holds a lone surrogate"),
    (event_body(details={"x": "\udfff"}), "details.x", "holds a lone surrogate"),
]


def _escaped_json(value: Any) -> bytes:
    """JSON with every non-ASCII character as a ``\\u`` escape (how a lone surrogate can be sent at all)."""
    return json.dumps(value).encode()


def test_text_the_ledger_cannot_store_alike_is_refused_on_both_backends(backend_client: Client) -> None:
    for body, where, reason in UNSTORABLE:
        single = backend_client.post("/audit", content=_escaped_json(body), headers=JSON)
        batch = backend_client.post("/audit/batch", content=_escaped_json([event_body(1), body]), headers=JSON)
        lines = _escaped_json(event_body(2)) + b"\n" + _escaped_json(body)
        ndjson = backend_client.post("/audit/batch", content=lines, headers=NDJSON)

        _assert_error(single, 400, "VALIDATION_ERROR")
        assert {where: reason} == single.json()["details"]
        assert {f"1.{where}": reason} == batch.json()["details"]
        assert {"1": {where: reason}} == ndjson.json()["details"]
        for response in (batch, ndjson):
            _assert_error(response, 400, "VALIDATION_ERROR")
    assert 0 == backend_client.get("/audit").json()["data"]["totalCount"]


def test_an_escaped_backslash_before_u0000_is_plain_text(client: Client) -> None:
    body = _escaped_json(event_body(ref="a\\u0000b"))  # the six characters \u0000, not a NUL

    response = client.post("/audit", content=body, headers=JSON)

    assert 201 == response.status_code, response.text
    assert "a\\u0000b" == client.get(f"/audit/{response.json()['data']['id']}").json()["data"]["ref"]


def test_unknown_method_is_405_naming_the_allowed_ones(client: Client) -> None:
    for method in ("DELETE", "TRACE", "PUT"):
        response = client.request(method, "/audit")
        _assert_error(response, 405, "METHOD_NOT_ALLOWED")
        assert {"GET", "POST", "OPTIONS"} == {name.strip() for name in response.headers["Allow"].split(",")}


def _assert_error(response: Any, status: int, code: str) -> None:
    assert (status, code) == (response.status_code, response.json()["code"]), response.text
    body = response.json()
    assert_valid(openapi_component("ErrorResponse"), body)
    assert {"status", "code", "message", "details", "requestId", "retryable", "timestamp"} == set(body)
    assert response.headers["x-request-id"] == body["requestId"]
    assert ISO_MS.match(body["timestamp"])
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
