"""The compose stack, run natively (tests/integration/ops/compose_native.py): every service's command from
docker-compose.yml with ops/dev/compose.env, ports shifted. Each service becomes healthy by its own compose
health check; the dev callers authenticate through the dev sQuid and Qonsent; two replicas share one
ledger, one Redis and one MLflow; Prometheus scrapes every target and sends a real alert to Alertmanager.

The same processes (and one API process with embedded live detection, the one-machine default) give the
/metrics against which every alert rule and every dashboard query is checked: a series no process exports
is a rule that can never fire, or a panel that stays empty.

The stack's environment is compose's but for one setting: QERBEROS_RATE_LIMIT_PER_MINUTE=20 on the
replicas, so that the shared limit shows in 24 requests. Tests run in file order; the last one tampers with
the ledger.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from tests.conftest import free_port
from tests.integration.api.conftest import event_body
from tests.integration.ops import compose_native
from tests.integration.ops.compose_native import DEV_ENVIRONMENT, SERVICES, NativeStack, native_service
from tests.integration.ops.stack import STOP_SECONDS, Service, cli
from tests.unit.ops._deploy import PROMETHEUS_DIR, load_yaml
from tests.unit.ops._promql import Selector, alert_expressions, dashboard_expressions, selectors

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

RATE_LIMIT = 20
HTTP_TIMEOUT = 10.0
STARTUP_SECONDS = 180.0  # a dozen processes start at once on two shared cores
METRICS_TOKEN = DEV_ENVIRONMENT["METRICS_TOKEN"]
# The dev callers of ops/dev/*-fixture.json (docs/RUNBOOK.md, "The dev profile").
ADMIN, QDRIVE, AUDITOR = "dev-token-admin", "dev-token-qdrive", "dev-token-auditor"
# Prometheus job -> the processes it scrapes (compose_native: the replicas, and the embedded-detection API).
JOBS = {"qerberos": ("replica", "embedded"), "qerberos-detector": ("detector",), "qerberos-scheduler": ("scheduler",)}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# Stopping the stack: who calls whom (Prometheus flushes alerts to Alertmanager, the detector asks MLflow).
_STOP_ORDER = ("callers", "qerberos", "backends")


def _wave(label: str) -> str:
    if label in ("prometheus", "proxy"):
        return "callers"
    if label.startswith("qerberos") or label in ("embedded", "detector", "scheduler"):
        return "qerberos"
    return "backends"


def _start(service: Service, stack: NativeStack, port: int, name: str) -> None:
    stack.services[service.name] = service.start()
    stack.health[service.name] = compose_native.health_check(name, stack, port)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    root = tmp_path_factory.mktemp("compose-native")
    with compose_native.databases() as databases:
        stack = compose_native.new_stack(root, databases)
        try:
            for name in ("redis", "mlflow", "squid", "qonsent", "alertmanager"):
                _start(native_service(name, stack, stack.ports[name]), stack, stack.ports[name], name)
            init = native_service("init", stack, 0)
            completed = subprocess.run(init.command, env=init.env, cwd=root, capture_output=True, text=True,
                                       timeout=180, check=False)  # fmt: skip
            assert 0 == completed.returncode, completed.stdout + completed.stderr  # service_completed_successfully
            for index, port in enumerate(stack.replica_ports):
                replica = native_service("qerberos", stack, port, f"qerberos-{index + 1}")
                replica.env["QERBEROS_RATE_LIMIT_PER_MINUTE"] = str(RATE_LIMIT)
                _start(replica, stack, port, "qerberos")
            embedded_port = free_port()
            embedded = native_service("qerberos", stack, embedded_port, "embedded")
            embedded.env["QERBEROS_LIVE_DETECTION"] = "embedded"  # the one-machine default, not a compose service
            stack.ports["embedded"] = embedded_port
            _start(embedded, stack, embedded_port, "qerberos")
            for name in ("detector", "scheduler", "proxy", "prometheus"):
                _start(native_service(name, stack, stack.ports[name]), stack, stack.ports[name], name)
            for label, service in stack.services.items():
                service.wait_until(stack.health[label], "healthy by its compose health check", STARTUP_SECONDS)
            yield stack
        finally:  # callers before what they call: a request to a service already gone waits out its timeout
            for wave in _STOP_ORDER:
                services = [service for label, service in stack.services.items() if _wave(label) == wave]
                for service in services:
                    service.terminate()
                for service in services:
                    service.stop(STOP_SECONDS)


def _metric_names(text: str) -> set[str]:
    """Every sample name the exposition can hold: a family declared without samples yet (a labelled counter
    nobody incremented) still names its series."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("", "_sum", "_count", "_created"), "info": ("_info",)}  # fmt: skip
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


@pytest.fixture(scope="module")
def exported(stack: NativeStack) -> dict[str, set[str]]:
    """process -> the series names its /metrics exports."""
    urls = {
        "replica": f"{stack.replica_urls[0]}/metrics",
        "embedded": f"{stack.url('embedded')}/metrics",
        "detector": f"{stack.url('detector')}/metrics",
        "scheduler": f"{stack.url('scheduler')}/metrics",
    }
    collected = {}
    for process, url in urls.items():
        response = httpx.get(url, headers=_bearer(METRICS_TOKEN), timeout=HTTP_TIMEOUT)
        assert 200 == response.status_code, f"{process}: {response.text[:200]}"
        collected[process] = _metric_names(response.text)
    return collected


def test_every_compose_service_runs_natively_and_passes_its_health_check(stack: NativeStack) -> None:
    """The fixture waited for each one's compose health check; `init` exited 0. Only Grafana and
    PostgreSQL are not started here (compose_native.NOT_RUN says why)."""
    started = {name.rsplit("-", 1)[0] if name.startswith("qerberos-") else name for name in stack.services}
    assert set(SERVICES) - set(compose_native.NOT_RUN) - {"init"} == started - {"embedded"}
    assert all(service.process.poll() is None for service in stack.services.values())


def test_the_dev_callers_authenticate_through_the_dev_squid_and_qonsent(stack: NativeStack) -> None:
    """Through the proxy, in remote mode: each dev caller has the permissions docs/RUNBOOK.md lists. (The
    replicas run without live detection and still serve the alerts, from the shared database.)"""
    proxy = stack.url("proxy")
    with httpx.Client(base_url=proxy, timeout=HTTP_TIMEOUT) as client:
        written = client.post("/audit", json=event_body(0, verdict="ALLOW"), headers=_bearer(QDRIVE))
        assert 201 == written.status_code, written.text
        event = written.json()["data"]["id"]
        answers = {
            "auditor reads the event": client.get(f"/audit/{event}", headers=_bearer(AUDITOR)).status_code,
            "auditor may not write": client.post("/audit", json=event_body(1), headers=_bearer(AUDITOR)).status_code,
            "auditor lists alerts": client.get("/alerts", headers=_bearer(AUDITOR)).status_code,
            "qdrive may not read": client.get(f"/audit/{event}", headers=_bearer(QDRIVE)).status_code,
            "admin reads health": client.get("/health/detailed", headers=_bearer(ADMIN)).status_code,
            "an unknown token": client.get("/audit", headers=_bearer("dev-token-nobody")).status_code,
            "no token": client.get("/audit").status_code,
            "metrics stay off the proxy": client.get("/metrics", headers=_bearer(METRICS_TOKEN)).status_code,
        }
    assert {
        "auditor reads the event": 200, "auditor may not write": 403, "auditor lists alerts": 200,
        "qdrive may not read": 403,
        "admin reads health": 200, "an unknown token": 401, "no token": 401, "metrics stay off the proxy": 404,
    } == answers  # fmt: skip


def test_both_replicas_ingest_into_one_ledger_that_qerberos_verify_finds_intact(stack: NativeStack) -> None:
    a, b = stack.replica_urls
    with httpx.Client(timeout=HTTP_TIMEOUT) as client:
        through_a = [client.post(f"{a}/audit", json=event_body(n, verdict="ALLOW"), headers=_bearer(QDRIVE))
                     for n in range(3)]  # fmt: skip
        through_b = client.post(f"{b}/audit/batch", json=[event_body(n, verdict="ALLOW") for n in range(3, 6)],
                                headers=_bearer(QDRIVE))  # fmt: skip
        assert [201, 201, 201, 201] == [r.status_code for r in (*through_a, through_b)], through_b.text
        from_a = through_a[0].json()["data"]["id"]
        from_b = through_b.json()["data"]["events"][0]["id"]
        assert (200, 200) == (  # each replica reads what the other one wrote: one ledger
            client.get(f"{b}/audit/{from_a}", headers=_bearer(AUDITOR)).status_code,
            client.get(f"{a}/audit/{from_b}", headers=_bearer(AUDITOR)).status_code,
        )
    verified = cli(stack.cli_environment(), "verify")
    assert (0, True) == (verified.returncode, verified.stdout.startswith("intact: ")), verified.stdout + verified.stderr


def test_detailed_health_on_each_replica_reports_every_dependency_up(stack: NativeStack) -> None:
    bodies = []
    for url in stack.replica_urls:
        response = httpx.get(f"{url}/health/detailed", headers=_bearer(ADMIN), timeout=HTTP_TIMEOUT)
        assert 200 == response.status_code, response.text
        bodies.append(response.json())
    for body in bodies:
        dependencies = {name: body["dependencies"][name]["status"] for name in body["dependencies"]}
        assert {"database", "redis", "mlflow", "squid", "qonsent"} <= set(dependencies)
        assert {"up"} == set(dependencies.values()), body
    assert bodies[0]["ledger"]["size"] == bodies[1]["ledger"]["size"]
    assert bodies[0]["pid"] != bodies[1]["pid"]


def test_the_rate_limit_is_shared_through_the_stack_redis_across_the_replicas(stack: NativeStack) -> None:
    """RATE_LIMIT + 4 requests of one caller alternate between the replicas: each alone sees far fewer than
    RATE_LIMIT, so the 429s come from the counter they share in the stack's Redis."""
    redis = Redis(host="127.0.0.1", port=stack.ports["redis"], socket_timeout=5)
    try:
        for key in redis.scan_iter("qerberos:ratelimit:*dev-auditor*"):
            redis.delete(key)  # a fresh one-minute window for this caller
        answers = [
            (n % 2, httpx.get(f"{stack.replica_urls[n % 2]}/ledger/key", headers=_bearer(AUDITOR),
                              timeout=HTTP_TIMEOUT).status_code)
            for n in range(RATE_LIMIT + 4)
        ]  # fmt: skip
        assert [200] * RATE_LIMIT == [status for _, status in answers[:RATE_LIMIT]], answers
        assert [(0, 429), (1, 429), (0, 429), (1, 429)] == answers[RATE_LIMIT:]
        (key,) = list(redis.scan_iter("qerberos:ratelimit:*dev-auditor*"))
        assert RATE_LIMIT + 4 == int(redis.get(key) or 0)
    finally:
        redis.close()


def test_every_alert_rule_reads_series_that_the_processes_of_its_jobs_export(
    stack: NativeStack, exported: dict[str, set[str]]
) -> None:
    assert {} == _never_exported(alert_expressions(), exported, _scraped_jobs())


def test_every_dashboard_query_reads_series_that_some_process_exports(
    stack: NativeStack, exported: dict[str, set[str]]
) -> None:
    assert {} == _never_exported(dashboard_expressions(), exported, _scraped_jobs())


def _scraped_jobs() -> set[str]:
    return {job["job_name"] for job in load_yaml(PROMETHEUS_DIR / "prometheus.yml")["scrape_configs"]}


def _never_exported(expressions: dict[str, str], exported: dict[str, set[str]], scraped: set[str]) -> dict[str, Any]:
    """expression name -> its selectors that no process of a job they allow exports (``up``: any scraped job)."""

    def exists(selector: Selector) -> bool:
        if selector.name == "up":
            return any(selector.allows_job(job) for job in scraped)
        return any(
            selector.allows_job(job) and any(selector.name in exported[process] for process in processes)
            for job, processes in JOBS.items()
        )

    never = {name: [s for s in selectors(expression) if not exists(s)] for name, expression in expressions.items()}
    return {name: missing for name, missing in never.items() if missing}


def test_only_processes_that_run_live_detection_export_the_detector_model_gauge(
    exported: dict[str, set[str]],
) -> None:
    has_gauge = {process: "qerberos_detector_model_loaded" in names for process, names in exported.items()}
    assert {"replica": False, "embedded": True, "detector": True, "scheduler": False} == has_gauge


def test_every_long_running_process_exports_its_memory_limit(exported: dict[str, set[str]]) -> None:
    assert {"replica", "embedded", "detector", "scheduler"} == {
        process for process, names in exported.items() if "qerberos_memory_limit_bytes" in names
    }


def _prometheus(stack: NativeStack, path: str, **params: str) -> Any:
    response = httpx.get(f"{stack.url('prometheus')}/api/v1/{path}", params=params, timeout=HTTP_TIMEOUT)
    assert 200 == response.status_code, response.text
    return response.json()["data"]


def _eventually(check: Any, what: str, timeout: float, stack: NativeStack, *logs: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(1.0)
    tails = "\n".join(f"--- {name}\n{stack.services[name].tail(15)}" for name in logs)
    pytest.fail(f"not {what} within {timeout:.0f} s\n{tails}")


def test_prometheus_scrapes_every_target_of_its_configuration_and_evaluates_every_rule(stack: NativeStack) -> None:
    def all_up() -> bool:
        targets = _prometheus(stack, "targets")["activeTargets"]
        return len(targets) == 5 and all(target["health"] == "up" for target in targets)

    _eventually(all_up, "every target up", 90, stack, "prometheus")
    jobs = sorted({target["labels"]["job"] for target in _prometheus(stack, "targets")["activeTargets"]})
    assert ["prometheus", "qerberos", "qerberos-detector", "qerberos-scheduler"] == jobs
    rules = [rule for group in _prometheus(stack, "rules")["groups"] for rule in group["rules"]]
    assert set(alert_expressions()) == {rule["name"] for rule in rules}
    _eventually(lambda: all(r["health"] == "ok" for g in _prometheus(stack, "rules")["groups"] for r in g["rules"]),
                "every rule evaluated without error", 60, stack, "prometheus")  # fmt: skip
    managers = _prometheus(stack, "alertmanagers")["activeAlertmanagers"]
    assert [f"{stack.url('alertmanager')}/api/v2/alerts"] == [manager["url"] for manager in managers]


def test_a_tampered_ledger_fires_verification_failed_in_alertmanager_with_an_absolute_runbook_url(
    stack: NativeStack,
) -> None:
    """Someone with the database's superuser rights changes an event's details behind qerberos's back. The
    scheduler verifies the whole ledger at start: restarted, it counts the failure; Prometheus fires
    QerberosVerificationFailed and Alertmanager holds it, its runbook_url under RUNBOOK_URL."""
    failures = 'qerberos_verification_failures_total{job="qerberos-scheduler"}'
    _eventually(lambda: _prometheus(stack, "query", query=failures)["result"], "the failure counter scraped", 60, stack,
                "prometheus")  # fmt: skip
    with psycopg.connect(compose_native.admin_database_url(stack), autocommit=True) as connection:
        connection.execute("SET session_replication_role = replica")  # past qerberos's triggers
        changed = connection.execute("UPDATE event_details SET details = '{\"n\": 99}' WHERE seq = 0").rowcount
    assert 1 == changed
    scheduler = stack.services["scheduler"]
    scheduler.stop(STOP_SECONDS)
    scheduler.start()
    scheduler.wait_until(stack.health["scheduler"], "healthy again", STARTUP_SECONDS)

    def fired() -> list[dict[str, Any]]:
        response = httpx.get(f"{stack.url('alertmanager')}/api/v2/alerts", timeout=HTTP_TIMEOUT)
        return [alert for alert in response.json() if alert["labels"]["alertname"] == "QerberosVerificationFailed"]

    (alert,) = _eventually(fired, "QerberosVerificationFailed in Alertmanager", 150, stack, "scheduler", "prometheus")
    assert ("critical", "qerberos-scheduler") == (alert["labels"]["severity"], alert["labels"]["job"])
    assert f"{DEV_ENVIRONMENT['RUNBOOK_URL']}#qerberosverificationfailed" == alert["annotations"]["runbook_url"]
    verified = cli(stack.cli_environment(), "verify")
    assert 1 == verified.returncode, verified.stdout + verified.stderr


def test_the_stack_processes_lived_through_the_tests(stack: NativeStack) -> None:
    assert [] == [name for name, service in stack.services.items() if service.process.poll() is not None]
