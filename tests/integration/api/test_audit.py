"""POST /audit, /audit/batch, GET /audit(/search), GET /audit/{id} against a real SQLite ledger,
each answer validated against the upstream contract."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import msgspec
from litestar.testing import TestClient

from tests.integration.api.conftest import event_body
from tests.integration.api.contract import (
    ISO_MS,
    as_upstream_event,
    assert_valid,
    json_contract,
    openapi_component,
)

Client = TestClient[Any]


def test_post_audit_answers_201_with_id_timestamp_and_ledger_coordinates(client: Client) -> None:
    response = client.post("/audit", json=event_body(1, cid="QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"))

    assert 201 == response.status_code
    body = response.json()
    assert_valid(openapi_component("AuditEventResponse"), body)
    data = body["data"]
    assert ("ok", "AUDIT_EVENT_LOGGED") == (body["status"], body["code"])
    assert "2026-01-01T00:01:00.000Z" == data["timestamp"]
    assert "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG" == data["cid"]
    assert 0 == data["seq"]
    assert 32 == len(base64.b64decode(data["leafHash"]))
    assert uuid.UUID(data["id"])
    assert ISO_MS.match(body["timestamp"])
    assert response.headers["x-request-id"]


def test_retry_with_the_same_id_answers_as_the_first_time(client: Client) -> None:
    event_id = str(uuid.uuid4())
    first = client.post("/audit", json=event_body(2, id=event_id))
    second = client.post("/audit", json=event_body(2, id=event_id))

    assert (201, 201) == (first.status_code, second.status_code)
    assert first.json()["data"] == second.json()["data"]
    assert 1 == client.get("/audit").json()["data"]["totalCount"]


def test_idempotency_key_header_makes_a_retry_safe(client: Client) -> None:
    headers = {"Idempotency-Key": "order-42-attempt"}
    first = client.post("/audit", json=event_body(3), headers=headers)
    second = client.post("/audit", json=event_body(3), headers=headers)
    uuid_key = str(uuid.uuid4())
    third = client.post("/audit", json=event_body(4), headers={"Idempotency-Key": uuid_key})

    assert first.json()["data"] == second.json()["data"]
    assert uuid_key == third.json()["data"]["id"]
    assert 2 == client.get("/audit").json()["data"]["totalCount"]


def test_same_id_with_other_content_is_a_conflict(client: Client) -> None:
    event_id = str(uuid.uuid4())
    client.post("/audit", json=event_body(5, id=event_id))
    response = client.post("/audit", json=event_body(6, id=event_id))

    assert (409, "CONFLICT") == (response.status_code, response.json()["code"])
    assert_valid(openapi_component("ErrorResponse"), response.json())


def test_batch_as_json_array_and_as_ndjson_appends_in_order(client: Client) -> None:
    array = client.post("/audit/batch", json=[event_body(n) for n in range(3)])
    lines = b"\n".join(msgspec.json.encode(event_body(n)) for n in range(3, 6)) + b"\n"
    ndjson = client.post("/audit/batch", content=lines, headers={"Content-Type": "application/x-ndjson"})

    assert (201, 201) == (array.status_code, ndjson.status_code)
    assert [0, 1, 2] == [item["seq"] for item in array.json()["data"]["events"]]
    assert [3, 4, 5] == [item["seq"] for item in ndjson.json()["data"]["events"]]
    assert (3, 3) == (ndjson.json()["data"]["count"], ndjson.json()["data"]["created"])


def test_batch_is_all_or_nothing_with_errors_keyed_by_index(client: Client) -> None:
    events = [event_body(n) for n in range(5)]
    events[1]["verdict"] = "MAYBE"
    events[3]["actor"] = {"squidId": "did:squid:x", "nickname": "x"}
    response = client.post("/audit/batch", json=events)

    assert 400 == response.status_code
    details = response.json()["details"]
    assert {"1", "3"} == set(details)
    assert "verdict" in details["1"]
    assert "actor.nickname" in details["3"]
    assert 0 == client.get("/audit").json()["data"]["totalCount"]


def test_batch_of_ten_thousand_is_accepted_and_one_more_is_refused(client: Client) -> None:
    small = {"type": "t", "ref": "r", "actor": {"squidId": "s"}, "layer": "l", "verdict": "ALLOW"}
    too_many = client.post("/audit/batch", json=[small] * 10_001)
    accepted = client.post("/audit/batch", json=[small] * 10_000)

    assert (413, "PAYLOAD_TOO_LARGE") == (too_many.status_code, too_many.json()["code"])
    assert 201 == accepted.status_code
    assert 10_000 == accepted.json()["data"]["created"]


def test_search_filters_pages_by_offset_and_by_cursor(client: Client) -> None:
    client.post("/audit/batch", json=[event_body(n) for n in range(12)])

    allowed = client.get("/audit", params={"verdict": "ALLOW", "limit": 2}).json()
    by_actor = client.get("/audit/search", params={"actor": "did:squid:user1"}).json()
    window = client.get(
        "/audit", params={"startDate": "2026-01-01T00:03:00Z", "endDate": "2026-01-01T00:05:00.000Z"}
    ).json()
    offset_page = client.get("/audit", params={"limit": 5, "offset": 5}).json()

    assert_valid(openapi_component("AuditEventSearchResponse"), allowed)
    assert (4, 2, True) == (
        allowed["data"]["totalCount"],
        len(allowed["data"]["events"]),
        allowed["data"]["hasMore"],
    )
    assert {"ALLOW"} == {event["verdict"] for event in allowed["data"]["events"]}
    assert {"did:squid:user1"} == {event["actor"]["squidId"] for event in by_actor["data"]["events"]}
    assert [5, 4, 3] == [event["seq"] for event in window["data"]["events"]]
    assert [6, 5, 4, 3, 2] == [event["seq"] for event in offset_page["data"]["events"]]

    seen: list[int] = []
    params: dict[str, Any] = {"limit": 5}
    while True:
        page = client.get("/audit", params=params).json()["data"]
        seen += [event["seq"] for event in page["events"]]
        if not page["hasMore"]:
            assert "nextCursor" not in page
            break
        params["cursor"] = page["nextCursor"]
    assert list(range(11, -1, -1)) == seen


def test_get_by_id_returns_the_stored_event_in_the_contract_shape(client: Client) -> None:
    created = client.post("/audit", json=event_body(7)).json()["data"]
    response = client.get(f"/audit/{created['id']}")

    assert 200 == response.status_code
    event = response.json()["data"]
    assert_valid(openapi_component("AuditEvent"), event)
    assert_valid(json_contract("audit-event.schema.json"), as_upstream_event(event))
    assert (created["seq"], created["leafHash"]) == (event["seq"], event["leafHash"])
    assert {"operation": "download", "n": 7} == event["details"]
    assert event["detailsCommitment"].startswith("sha256:")


def test_a_caller_cannot_forge_an_erasure_or_a_qerberos_event(client: Client) -> None:
    erasure = client.post("/audit", json=event_body(7, type="gdpr.erasure"))
    own_layer = client.post("/audit/batch", json=[event_body(8), event_body(9, layer="qerberos")])

    assert (400, ["type"]) == (erasure.status_code, list(erasure.json()["details"]))
    assert 400 == own_layer.status_code
    assert 0 == client.get("/audit").json()["data"]["totalCount"]
