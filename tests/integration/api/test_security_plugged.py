"""The app with its own security layer: which routes are public, which permission each route needs, and
that refusals from the real authentication and rate-limit middleware reach the metrics with their status."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from qerberos.settings import Settings
from tests.conftest import make_settings
from tests.integration.api.conftest import METRICS_TOKEN, event_body, make_token

Client = TestClient[Any]
PROTECTED = [
    "/audit",
    "/audit/search",
    "/ledger/checkpoint",
    "/ledger/key",
    "/health/detailed",
    "/metrics",
    "/tile/entries/000",
]
METRICS = {"Authorization": f"Bearer {METRICS_TOKEN}"}


@pytest.mark.parametrize("path", PROTECTED)
def test_every_route_but_health_needs_an_authenticated_caller(app_client: Client, path: str) -> None:
    response = app_client.get(path)
    assert (401, "SQUID_IDENTITY_MISSING") == (response.status_code, response.json()["code"])
    assert 'Bearer realm="qerberos"' == response.headers["WWW-Authenticate"]


def test_the_metrics_token_opens_metrics_only(app_client: Client) -> None:
    wrong = app_client.get("/metrics", headers={"Authorization": "Bearer nope"})
    elsewhere = app_client.get("/audit", headers=METRICS)
    assert 200 == app_client.get("/metrics", headers=METRICS).status_code
    assert (401, "SQUID_IDENTITY_INVALID") == (wrong.status_code, wrong.json()["code"])
    assert (401, "SQUID_IDENTITY_INVALID") == (elsewhere.status_code, elsewhere.json()["code"])
    assert 'Bearer realm="qerberos"' == wrong.headers["WWW-Authenticate"]


@pytest.mark.parametrize("path", ["/health", "/health/live", "/health/ready"])
def test_health_probes_are_public(app_client: Client, path: str) -> None:
    assert 200 == app_client.get(path).status_code


@pytest.mark.parametrize("path", ["/checkpoint", "/tile/0/000", "/tile/1/000.p/3"])
def test_the_checkpoint_and_hash_tiles_are_public(app_client: Client, path: str) -> None:
    status = app_client.get(path).status_code  # the log may not have them yet: found or not, never a 401
    assert status in (200, 404), status


def test_routes_require_their_permission_and_ledger_routes_only_authentication(
    app_client: Client, api_settings: Settings
) -> None:
    reader = {"Authorization": f"Bearer {make_token(api_settings, 'reader', ['audit:read'])}"}
    outsider = {"Authorization": f"Bearer {make_token(api_settings, 'outsider', ['risk:read'])}"}

    denied = app_client.post("/audit", json=event_body(), headers=reader)
    assert (403, "QONSENT_DENIED") == (denied.status_code, denied.json()["code"])
    assert 200 == app_client.get("/audit", headers=reader).status_code
    assert 403 == app_client.get("/audit", headers=outsider).status_code
    assert 403 == app_client.get("/tile/entries/000", headers=outsider).status_code
    for path in ("/ledger/checkpoint", "/ledger/key", "/health/detailed", "/schema"):
        assert 200 == app_client.get(path, headers=outsider).status_code, path
    assert 200 == app_client.get("/metrics", headers=outsider).status_code


def test_real_rate_limit_answers_429_with_retry_after_and_metrics_record_401_and_429(
    api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QERBEROS_RATE_LIMIT_PER_MINUTE", "3")
    settings = make_settings(monkeypatch, api_settings.home)
    token = {"Authorization": f"Bearer {make_token(settings, 'limited', ['audit:read'])}"}
    from api import metrics

    metrics.HTTP_REQUESTS.clear()
    with TestClient(create_app(settings)) as client:
        statuses = [client.get("/audit", headers=token).status_code for _ in range(4)]
        limited = client.get("/audit", headers=token)
        client.get("/audit")  # no credentials
        text = client.get("/metrics", headers=METRICS).text

    assert [200, 200, 200, 429] == statuses
    assert ("RATE_LIMIT_EXCEEDED", True) == (limited.json()["code"], limited.json()["retryable"])
    assert int(limited.headers["retry-after"]) >= 1
    counts = {
        sample.labels["status"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "qerberos_http_requests_total" and sample.labels["route"] == "/audit"
    }
    assert {"200": 3.0, "429": 2.0, "401": 1.0} == counts


def test_metrics_count_against_their_callers_rate_limit(
    api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QERBEROS_RATE_LIMIT_PER_MINUTE", "3")
    settings = make_settings(monkeypatch, api_settings.home)
    reader = {"Authorization": f"Bearer {make_token(settings, 'reader', ['audit:read'])}"}
    with TestClient(create_app(settings)) as client:
        by_reader = [client.get(path, headers=reader).status_code for path in ("/audit", "/metrics", "/metrics")]
        by_reader.append(client.get("/metrics", headers=reader).status_code)
        by_scraper = [client.get("/metrics", headers=METRICS).status_code for _ in range(4)]
    assert [200, 200, 200, 429] == by_reader
    assert [200, 200, 200, 429] == by_scraper
