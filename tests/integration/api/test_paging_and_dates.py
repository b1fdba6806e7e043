"""The contract's small points: plain dates where date-times are taken, ``cursor`` and ``offset`` not together, and
cursor paging of the alerts."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from models.alerts import AlertCandidate
from tests.integration.api.conftest import event_body

Client = TestClient[Any]
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def test_a_plain_date_is_the_midnight_utc_that_starts_it(client: Client) -> None:
    events = [event_body(n, timestamp=f"2026-02-0{1 + n % 3}T12:00:00.000Z") for n in range(6)]
    assert 201 == client.post("/audit/batch", json=events).status_code

    page = client.get("/audit", params={"startDate": "2026-02-02", "endDate": "2026-02-03"})

    assert 200 == page.status_code, page.text
    assert ["2026-02-02T12:00:00.000Z"] * 2 == [event["timestamp"] for event in page.json()["data"]["events"]]


def test_a_cursor_with_an_offset_is_refused_naming_the_offset(client: Client) -> None:
    assert 201 == client.post("/audit/batch", json=[event_body(n) for n in range(3)]).status_code
    cursor = client.get("/audit", params={"limit": 1}).json()["data"]["nextCursor"]

    refused = client.get("/audit", params={"cursor": cursor, "offset": 0})

    assert (400, "VALIDATION_ERROR") == (refused.status_code, refused.json()["code"])
    assert {"offset"} == set(refused.json()["details"])
    assert 200 == client.get("/audit", params={"cursor": cursor}).status_code


def test_alerts_page_by_cursor_newest_first_each_exactly_once(client: Client) -> None:
    alerts = client.app.state.alerts
    for n in range(5):
        candidate = AlertCandidate(f"did:squid:user{n}", "brute_force", "T1110", "high", 0.9, "test", {})
        alerts.raise_alert(candidate, now_ms=T0_MS + (n // 2) * 1000)  # two pairs share a creation instant
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    for _ in range(5):
        data = client.get("/anomaly/alerts", params=params).json()["data"]
        seen += [alert["id"] for alert in data["alerts"]]
        assert 5 == data["totalCount"]
        if not data["hasMore"]:
            assert "nextCursor" not in data
            break
        params = {"limit": 2, "cursor": data["nextCursor"]}
    newest_first = [alert["id"] for alert in client.get("/alerts", params={"limit": 5}).json()["data"]["alerts"]]
    assert newest_first == seen
    assert 400 == client.get("/alerts", params={"cursor": "bm90LWEtY3Vyc29y"}).status_code


def test_an_empty_report_date_is_refused_not_read_as_absent(client: Client) -> None:
    for name in ("startDate", "endDate"):
        refused = client.get("/compliance/report", params={name: ""})
        assert (400, {name}) == (refused.status_code, set(refused.json()["details"])), refused.text
