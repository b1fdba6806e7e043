"""A real Prometheus (Debian's `prometheus` package) scrapes a running `qerberos serve` (issue 7).

Prometheus gets a generated configuration: the job `qerberos` (the name the alert rules select on) scrapes
one replica on a loopback port every second with the metrics bearer token, and `ops/prometheus/alerts.yml`
is its rule file. The test then asks Prometheus' HTTP API, not qerberos, what it has seen.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import free_port
from tests.integration.api.conftest import event_body
from tests.integration.ops.stack import BIN, REPO, Service, cli, running

pytestmark = pytest.mark.slow

PROMETHEUS = "/usr/bin/prometheus"
ALERTS_FILE = REPO / "ops" / "prometheus" / "alerts.yml"
RUNBOOK = REPO / "docs" / "RUNBOOK.md"
METRICS_TOKEN = "prometheus-scrape-test-token"
HTTP_TIMEOUT = 10.0
INGESTED = 7


def _prometheus_binary() -> str:
    """Missing is a failure, never a skip (CI or not), like promtool in tests/unit/ops."""
    if not os.access(PROMETHEUS, os.X_OK):
        found = shutil.which("prometheus")
        if found is None:
            pytest.fail("prometheus is not installed: run `make system-deps` (Debian package `prometheus`)")
        return found
    return PROMETHEUS


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=HTTP_TIMEOUT)
        assert 200 == response.status_code, response.text
        body = response.json()
        assert "success" == body["status"], body
        return body["data"]

    def query(self, expression: str) -> dict[str, float]:
        """An instant query: the value of each series, keyed by its labels as sorted JSON."""
        result = self.api("query", query=expression)["result"]
        return {json.dumps(item["metric"], sort_keys=True): float(item["value"][1]) for item in result}

    def eventually(self, check: Callable[[], bool], what: str, service: Service, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.5)
        targets = [
            (target["scrapeUrl"], target["health"], target["lastError"])
            for target in self.api("targets")["activeTargets"]
        ]
        pytest.fail(f"Prometheus did not see {what} within {timeout:.0f} s; targets {targets}:\n{service.tail(10)}")


@pytest.fixture
def qerberos(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`qerberos serve` on a fresh SQLite home, local auth; its URL and the admin's headers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QERBEROS_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        QERBEROS_HOME=str(tmp_path / "home"),
        QERBEROS_LOG_DIR=str(tmp_path / "logs"),
        QERBEROS_MLFLOW_TRACKING_URI=(tmp_path / "mlruns").as_uri(),
        QERBEROS_LOG_ORIGIN="test.qerberos.local/audit",
        QERBEROS_LOG_LEVEL="WARNING",
        QERBEROS_AUTH_MODE="local",
        QERBEROS_HOST="127.0.0.1",
        QERBEROS_PORT=str(port),
        QERBEROS_METRICS_TOKEN=METRICS_TOKEN,
    )
    initialised = cli(env, "init")
    assert 0 == initialised.returncode, initialised.stdout + initialised.stderr
    url = f"http://127.0.0.1:{port}"
    with running(Service("qerberos", [str(BIN / "qerberos"), "serve"], env, tmp_path / "logs")) as service:
        service.wait_http(f"{url}/health/ready")
        token = (tmp_path / "home" / "admin.token").read_text().strip()
        yield url, {"Authorization": f"Bearer {token}"}


@pytest.fixture
def prometheus(qerberos: tuple[str, dict[str, str]], tmp_path: Path) -> Iterator[tuple[Prometheus, Service]]:
    target = qerberos[0].removeprefix("http://")
    token_file = tmp_path / "prometheus" / "metrics_token"
    token_file.parent.mkdir()
    token_file.write_text(METRICS_TOKEN)
    token_file.chmod(0o600)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS_FILE)],
        "scrape_configs": [
            {
                "job_name": "qerberos",
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "metrics_path": "/metrics",
                "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
                "static_configs": [{"targets": [target]}],
            }
        ],
    }
    config_file = tmp_path / "prometheus" / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    service = Service(
        "prometheus",
        [
            _prometheus_binary(),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={tmp_path / 'prometheus' / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        {k: v for k, v in os.environ.items() if not k.startswith("QERBEROS_")},
        tmp_path / "logs",
        cwd=tmp_path / "prometheus",
    )
    with running(service):
        service.wait_http(f"http://127.0.0.1:{port}/-/ready")
        yield Prometheus(f"http://127.0.0.1:{port}"), service


def _runbook_alerts() -> set[str]:
    """The `### Qerberos...` headings of the runbook's "Metrics and alerts" section."""
    section = RUNBOOK.read_text().split("## Metrics and alerts", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^### (Qerberos\w+)\s*$", section, flags=re.MULTILINE))


def test_prometheus_scrapes_qerberos_and_sees_its_requests_ledger_size_and_alert_rules(
    qerberos: tuple[str, dict[str, str]], prometheus: tuple[Prometheus, Service]
) -> None:
    url, admin = qerberos
    server, service = prometheus
    up = json.dumps({"instance": url.removeprefix("http://"), "job": "qerberos"}, sort_keys=True)
    server.eventually(
        lambda: {up: 1.0} == server.query('max by (job, instance) (up{job="qerberos"})'), "the target up", service
    )

    with httpx.Client(timeout=HTTP_TIMEOUT) as client:
        assert 401 == client.post(f"{url}/audit", json=event_body(0)).status_code
        assert 400 == client.post(f"{url}/audit", json={"type": 1}, headers=admin).status_code
        batch = client.post(
            f"{url}/audit/batch", json=[event_body(n, verdict="ALLOW") for n in range(5)], headers=admin
        )
        singles = [client.post(f"{url}/audit", json=event_body(n, verdict="ALLOW"), headers=admin) for n in (5, 6)]
        assert [201, 201, 201] == [r.status_code for r in (batch, *singles)], batch.text

    by_status = 'sum by (status) (qerberos_http_requests_total{job="qerberos", status=~"400|401"})'
    server.eventually(
        lambda: {'{"status": "400"}': 1.0, '{"status": "401"}': 1.0} == server.query(by_status),
        "one 400 and one 401",
        service,
    )
    ledger_size = 'qerberos_ledger_size{job="qerberos"}'
    server.eventually(lambda: [float(INGESTED)] == list(server.query(ledger_size).values()), "the ledger size", service)
    ingested = 'sum(qerberos_events_ingested_total{job="qerberos"})'
    assert [float(INGESTED)] == list(server.query(ingested).values())

    rules = [rule for group in server.api("rules")["groups"] for rule in group["rules"]]
    names = {rule["name"] for rule in rules if rule["type"] == "alerting"}
    in_file = {rule["alert"] for group in yaml.safe_load(ALERTS_FILE.read_text())["groups"] for rule in group["rules"]}
    assert in_file == names
    assert _runbook_alerts() == names

    def evaluated_cleanly() -> bool:
        current = server.api("rules")["groups"]
        return all(rule["health"] == "ok" for group in current for rule in group["rules"])

    server.eventually(evaluated_cleanly, "every rule evaluated without error", service)
    firing = server.query('ALERTS{alertstate="firing"}')
    assert {} == firing
