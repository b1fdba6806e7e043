"""The publisher embedded in the API process: what the API logs reaches the broker, and ``/metrics`` shows the
publishing lag, which grows while the broker is down and returns to zero once it is back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from tests.integration.api.conftest import METRICS_TOKEN, configure_api, event_body, local_security, make_token
from tests.integration.events.brokers import PrivateNats


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateNats]:
    server = PrivateNats(tmp_path / "nats")
    server.start()
    yield server
    server.kill()


def _lag(client: TestClient[Any]) -> tuple[float, float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    families = text_string_to_metric_families(response.text)
    samples = {sample.name: sample.value for family in families for sample in family.samples}
    return samples["qerberos_events_publish_lag_events"], samples["qerberos_events_publish_lag_seconds"]


def _wait_for(client: TestClient[Any], events_behind: float, timeout: float = 30) -> tuple[float, float]:
    deadline = time.monotonic() + timeout
    while (lag := _lag(client))[0] != events_behind:
        assert time.monotonic() < deadline, f"lag {lag}, waiting for {events_behind} events behind"
        time.sleep(0.2)
    return lag


def test_metrics_show_publishing_lag_while_the_broker_is_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broker: PrivateNats
) -> None:
    monkeypatch.setenv("QERBEROS_EVENTS_URL", broker.url)
    monkeypatch.setenv("QERBEROS_EVENTS_STREAM", "QERBEROS_LAG_TEST")
    settings = configure_api(tmp_path, monkeypatch)
    token = make_token(settings, "writer", ["admin"])
    with local_security(settings) as hooks, TestClient(create_app(settings, security=hooks)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        assert 201 == client.post("/audit/batch", json=[event_body(n) for n in range(20)]).status_code
        assert (0.0, 0.0) == _wait_for(client, 0.0)
        broker.kill()
        assert 201 == client.post("/audit/batch", json=[event_body(n) for n in range(5)]).status_code
        time.sleep(1.1)
        behind, waited = _lag(client)
        assert (5.0, True) == (behind, waited >= 1.0)
        broker.start()
        assert (0.0, 0.0) == _wait_for(client, 0.0)
