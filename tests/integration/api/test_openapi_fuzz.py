"""Schemathesis over the OpenAPI document the service serves (``/schema/openapi.json``): every operation, with
valid and invalid parameters and bodies, is answered without a server error (5xx).

A real ``qerberos serve`` (local mode, SQLite) with a trained champion detector, so that no 503 is the honest
answer of a missing dependency; authenticated as an admin identity, rate limit off. Bounded: a fixed seed,
``MAX_EXAMPLES`` positive and as many negative cases per operation (about 2,500 requests), no shrinking. Only
"not a server error" is checked here: whether the document describes every status and shape exactly is another
matter. The cases come from schemathesis's strategies (``APIOperation.as_strategy``) under a ``given`` of ours:
its pytest integration for fixtures (``schemathesis.pytest.from_fixture``) reads ``Node._nodeid``, which pytest 9
no longer has.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.core.result import Ok

from analytics.detectors import load_config
from analytics.labels import label_windows
from analytics.simulation import SimulationConfig, simulate
from analytics.window_features import compute_features
from models.ledger import Ledger, initialise
from models.verification import verify_ledger
from pipelines.model_registry import set_champion
from pipelines.train import train
from qerberos.settings import Settings
from tests.conftest import free_port, make_settings
from tests.integration.api.conftest import event_body
from tests.integration.ops.stack import REPO, Service

MAX_EXAMPLES = 50
SEED = 20261207


def _train_champion(tracking_uri: str) -> None:
    """A small detector (HBOS on 10 simulated identities over 3 days), made champion."""
    result = simulate(SimulationConfig(identities=10, days=3, seed=1))
    features = label_windows(compute_features(result.events.lazy(), "1h").collect(), result.labels)
    config = dataclasses.replace(load_config(), eval_share=0.3).with_members(("hbos",))
    version = train(features, config=config, tracking_uri=tracking_uri, gate=False).version
    set_champion(tracking_uri, version, tags={"promoted_by": "tests"})


@dataclasses.dataclass(frozen=True)
class Served:
    url: str
    token: str
    settings: Settings


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    settings = make_settings(monkeypatch, tmp_path / "home")
    _train_champion(settings.mlflow_tracking_uri)
    initialise(settings).close()
    port = free_port()
    env = {
        **os.environ,
        "QERBEROS_HOME": str(settings.home),
        "QERBEROS_HOST": "127.0.0.1",
        "QERBEROS_PORT": str(port),
        "QERBEROS_AUTH_MODE": "local",
        "QERBEROS_RATE_LIMIT_PER_MINUTE": "0",
        "QERBEROS_LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    service = Service("qerberos", [sys.executable, "-m", "cli.serve", "serve"], env, tmp_path / "logs", REPO)
    service.start()
    try:
        url = f"http://127.0.0.1:{port}"
        service.wait_http(f"{url}/health/ready")
        token = (settings.home / "admin.token").read_text().strip()
        seeded = httpx.post(
            f"{url}/audit/batch", json=[event_body(n) for n in range(20)], headers={"Authorization": f"Bearer {token}"}
        )
        assert 201 == seeded.status_code, seeded.text
        yield Served(url, token, settings)
    finally:
        service.stop()


@pytest.mark.live_detection  # POST /anomaly/detect answers 503 where live detection is off
def test_no_operation_of_the_served_document_answers_a_server_error(served: Served) -> None:
    """Each operation, positive then negative cases, ``MAX_EXAMPLES`` each; every 5xx is collected, then listed."""
    auth = {"Authorization": f"Bearer {served.token}"}
    schema = schemathesis.openapi.from_url(f"{served.url}/schema/openapi.json", headers=auth)
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(results) == len(operations), [result for result in results if not isinstance(result, Ok)]
    server_errors: list[str] = []
    sent = 0

    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @hypothesis.seed(SEED)
            @hypothesis.settings(
                max_examples=MAX_EXAMPLES,
                database=None,
                deadline=None,
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],  # no shrinking: every 5xx counts
                suppress_health_check=list(hypothesis.HealthCheck),
            )
            @hypothesis.given(case=operation.as_strategy(mode))
            def send(case: Case[Any]) -> None:
                nonlocal sent
                response = case.call(base_url=served.url, headers=auth, timeout=60)
                sent += 1
                if response.status_code >= 500:
                    server_errors.append(f"{response.status_code} {response.text[:300]}\n  {case.as_curl_command()}")

            send()

    assert [] == server_errors
    assert sent >= len(operations) * MAX_EXAMPLES  # every operation was exercised, in both modes
    with Ledger.from_settings(served.settings) as ledger:
        assert verify_ledger(ledger).intact
