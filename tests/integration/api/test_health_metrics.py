"""/health in the runbook's shape with measured latencies, the probes, /metrics, and OpenAPI at /schema."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from litestar.types import ASGIApp, Receive, Scope, Send
from prometheus_client.parser import text_string_to_metric_families

from api.app import SecurityHooks, create_app
from qerberos.errors import AuthenticationError, RateLimitedError
from qerberos.settings import Settings
from tests.conftest import make_settings
from tests.integration.api.conftest import METRICS_TOKEN, event_body
from tests.integration.api.contract import RUNBOOK_HEALTH, assert_valid, runbook_health_example

Client = TestClient[Any]
TOKEN = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def test_runbook_example_fits_the_schema_the_tests_hold_health_to() -> None:
    assert_valid(RUNBOOK_HEALTH, runbook_health_example())


def test_health_in_local_mode_has_the_runbook_shape_and_says_nothing_was_measured(client: Client) -> None:
    response = client.get("/health")

    assert 200 == response.status_code
    body = response.json()
    assert_valid(RUNBOOK_HEALTH, body)
    assert "healthy" == body["status"]
    assert {"status": "up", "latency": 0, "mode": "local"} == body["dependencies"]["squid"]


@pytest.fixture
def slow_dependency() -> Iterator[str]:
    """A real HTTP server on a loopback port that answers /health after 50 ms."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            threading.Event().wait(0.05)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_health_in_remote_mode_measures_latency_and_reports_a_dead_dependency_as_degraded(
    api_settings: Settings, slow_dependency: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QERBEROS_AUTH_MODE", "remote")
    monkeypatch.setenv("QERBEROS_SQUID_URL", slow_dependency)
    monkeypatch.setenv("QERBEROS_QONSENT_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    settings = make_settings(monkeypatch, api_settings.home)
    with TestClient(create_app(settings)) as client:
        body = client.get("/health").json()
        metrics = _metrics(client)

    assert_valid(RUNBOOK_HEALTH, body)
    assert "degraded" == body["status"]
    assert "up" == body["dependencies"]["squid"]["status"]
    assert body["dependencies"]["squid"]["latency"] >= 50
    assert "down" == body["dependencies"]["qonsent"]["status"]
    assert 1.0 == metrics[("qerberos_dependency_up", (("dependency", "squid"),))]
    assert 0.0 == metrics[("qerberos_dependency_up", (("dependency", "qonsent"),))]


def test_health_is_degraded_while_a_configured_redis_does_not_answer_and_says_so(
    api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QERBEROS_REDIS_URL", "redis://127.0.0.1:9/0")  # discard port: nothing listens
    settings = make_settings(monkeypatch, api_settings.home)
    with TestClient(create_app(settings)) as client:
        response = client.get("/health")

    body = response.json()
    assert_valid(RUNBOOK_HEALTH, body)
    assert (200, "degraded", ["redis does not answer"]) == (response.status_code, body["status"], body["reasons"])


def test_live_ready_and_detailed_health(client: Client) -> None:
    client.post("/audit/batch", json=[event_body(n) for n in range(4)])

    assert 200 == client.get("/health/live").status_code
    assert "ready" == client.get("/health/ready").json()["status"]
    detailed = client.get("/health/detailed").json()
    assert {"squid", "qonsent", "database", "redis", "mlflow"} == set(detailed["dependencies"])
    assert "up" == detailed["dependencies"]["database"]["status"]
    assert (4, 3) == (detailed["ledger"]["size"], detailed["ledger"]["headSeq"])
    assert detailed["disk"]["freeBytes"] > 0
    assert detailed["uptimeSeconds"] >= 0


def test_metrics_parse_and_count_requests_by_route_template_status_and_ingestion(client: Client) -> None:
    client.post("/audit/batch", json=[event_body(n) for n in range(6)])
    created = client.post("/audit", json=event_body(9)).json()["data"]
    client.get(f"/audit/{created['id']}")
    client.get("/audit/not-a-uuid")
    client.get("/nowhere")

    metrics = _metrics(client)

    requests = "qerberos_http_requests_total"
    assert 1.0 == metrics[(requests, _labels(method="GET", route="/audit/{event_id}", status="200"))]
    assert 1.0 == metrics[(requests, _labels(method="GET", route="/audit/{event_id}", status="400"))]
    assert 1.0 == metrics[(requests, _labels(method="GET", route="<unmatched>", status="404"))]
    assert 3.0 == metrics[("qerberos_events_ingested_total", _labels(layer="qdrive", verdict="ALLOW"))]
    assert 7.0 == metrics[("qerberos_ledger_size", ())]
    assert ("qerberos_unsigned_entries_age_seconds", ()) in metrics  # what the stale-checkpoint alert watches
    buckets = {
        float(dict(labels)["le"]) for name, labels in metrics if name == "qerberos_http_request_duration_seconds_bucket"
    }
    assert {0.005, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0, 10.0} <= buckets
    assert any(name.startswith("process_") for name, _ in metrics)


class _RefusingMiddleware:
    """Stands in for the security middleware: refuses like it does, from inside the middleware stack."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", []))
        if b"x-test-refuse" in headers:
            if headers[b"x-test-refuse"] == b"429":
                raise RateLimitedError("slow down", retry_after=7)
            raise AuthenticationError("SIGNATURE_INVALID", "bad signature")
        await self.app(scope, receive, send)


@pytest.fixture
def security() -> SecurityHooks:
    return SecurityHooks(middleware=[_RefusingMiddleware])


def test_statuses_raised_in_a_middleware_are_recorded_as_sent(client: Client) -> None:
    unauthorised = client.get("/audit", headers={"x-test-refuse": "401"})
    limited = client.get("/audit", headers={"x-test-refuse": "429"})

    metrics = _metrics(client)

    assert (401, "SIGNATURE_INVALID") == (unauthorised.status_code, unauthorised.json()["code"])
    assert (429, "7") == (limited.status_code, limited.headers["retry-after"])
    assert limited.json()["retryable"] is True
    assert 1.0 == metrics[("qerberos_http_requests_total", _labels(method="GET", route="/audit", status="401"))]
    assert 1.0 == metrics[("qerberos_http_requests_total", _labels(method="GET", route="/audit", status="429"))]
    assert ("qerberos_http_requests_total", _labels(method="GET", route="/audit", status="200")) not in metrics


def test_openapi_at_schema_documents_routes_and_the_event_body(client: Client) -> None:
    schema = client.get("/schema/openapi.json").json()

    assert {"/audit", "/audit/batch", "/audit/search", "/audit/{id}", "/ledger/checkpoint", "/health"} <= set(
        schema["paths"]
    )
    reference = schema["paths"]["/audit"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = schema["components"]["schemas"][reference.rsplit("/", 1)[-1]]
    assert {"type", "ref", "actor", "layer", "verdict"} <= set(body["required"])
    assert body["additionalProperties"] is False
    assert "application/x-ndjson" in schema["paths"]["/audit/batch"]["post"]["requestBody"]["content"]
    assert "logAuditEvent" == schema["paths"]["/audit"]["post"]["operationId"]


def _labels(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def _metrics(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``, parsed by prometheus_client's own parser."""
    response = client.get("/metrics", headers=TOKEN)
    assert 200 == response.status_code
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@pytest.fixture(autouse=True)
def _fresh_http_metrics() -> Iterator[None]:
    """The metrics are process-wide; clear the labelled series so each test counts from zero."""
    from api import metrics

    for metric in (metrics.HTTP_REQUESTS, metrics.HTTP_DURATION, metrics.EVENTS_INGESTED, metrics.DEPENDENCY_UP):
        metric.clear()
    yield
