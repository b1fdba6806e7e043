"""The compose stack's processes, run natively together: an MLflow tracking server on PostgreSQL, two API
replicas on one PostgreSQL ledger, Redis and that MLflow server, and the report scheduler (issue 7).

Everything listens on free loopback ports; PostgreSQL databases (the ledger's, MLflow's) are created for
the module and dropped afterwards; Redis is used on a database other than the one the other tests share.
A missing PostgreSQL or Redis fails, never skips.

Replica B gets a home of its own whose signing keys and admin token are those of the shared home (links):
two `qerberos serve` on one QERBEROS_HOME refuse to run together (the pid file, see the xfail below).
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis

from tests.conftest import free_port
from tests.integration.api.conftest import event_body
from tests.integration.ops.stack import (
    BIN,
    Service,
    cli,
    fresh_postgres_database,
    redis_db_url,
    running,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

RATE_LIMIT = 20
METRICS_TOKEN = "native-stack-metrics-token"
HTTP_TIMEOUT = 10.0


@dataclasses.dataclass(frozen=True)
class Stack:
    env: dict[str, str]  # what every qerberos process of the stack was given (shared home)
    replicas: tuple[str, str]  # base URLs of replicas A and B
    scheduler_metrics: str
    admin: dict[str, str]
    redis_url: str
    services: tuple[Service, ...]
    tmp: Path


def _base_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QERBEROS_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("native-stack")
    redis_url = redis_db_url(random.randint(1, 15))  # not db 0, where the other Redis tests keep their keys
    with fresh_postgres_database("qerberos_stack") as ledger_url, fresh_postgres_database("mlflow_stack") as ml_url:
        mlflow_port = free_port()
        mlflow = Service(
            "mlflow",
            [
                str(BIN / "mlflow"), "server",
                "--backend-store-uri", ml_url.replace("postgresql://", "postgresql+psycopg://", 1),
                "--artifacts-destination", str(tmp / "mlartifacts"),
                "--host", "127.0.0.1", "--port", str(mlflow_port),
                "--workers", "1",
            ],
            _base_env(tmp),
            tmp / "logs",
            cwd=tmp,  # nothing MLflow writes lands in the working tree
        )  # fmt: skip
        home = tmp / "home"
        env = {
            **_base_env(tmp),
            "QERBEROS_HOME": str(home),
            "QERBEROS_DATABASE_URL": ledger_url,
            "QERBEROS_REDIS_URL": redis_url,
            "QERBEROS_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
            "QERBEROS_LOG_DIR": str(tmp / "logs"),
            "QERBEROS_LOG_ORIGIN": "test.qerberos.local/audit",
            "QERBEROS_LOG_LEVEL": "WARNING",
            "QERBEROS_AUTH_MODE": "local",
            "QERBEROS_HOST": "127.0.0.1",
            "QERBEROS_RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT),
            "QERBEROS_METRICS_TOKEN": METRICS_TOKEN,
            "QERBEROS_CHECKPOINT_INTERVAL": "1",
            "QERBEROS_SCHEDULER_METRICS_PORT": str(free_port()),
        }
        with running(mlflow):
            initialised = cli(env, "init")  # while MLflow creates its schema
            assert 0 == initialised.returncode, initialised.stdout + initialised.stderr
            mlflow.wait_http(f"http://127.0.0.1:{mlflow_port}/health")

            home_b = tmp / "home-b"
            home_b.mkdir()
            for shared in ("keys", "admin.token"):
                (home_b / shared).symlink_to(home / shared)
            ports = (free_port(), free_port())
            replicas = (
                Service(
                    "replica-a", [str(BIN / "qerberos"), "serve"], {**env, "QERBEROS_PORT": str(ports[0])}, tmp / "logs"
                ),
                Service(
                    "replica-b",
                    [str(BIN / "qerberos"), "serve"],
                    {**env, "QERBEROS_PORT": str(ports[1]), "QERBEROS_HOME": str(home_b)},
                    tmp / "logs",
                ),
            )
            scheduler = Service("scheduler", [str(BIN / "qerberos"), "report", "schedule"], env, tmp / "logs")
            with running(replicas[0]), running(replicas[1]), running(scheduler):
                urls = (f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}")
                for replica, url in zip(replicas, urls, strict=True):
                    replica.wait_http(f"{url}/health/ready")
                scheduler_metrics = f"http://127.0.0.1:{env['QERBEROS_SCHEDULER_METRICS_PORT']}/metrics"
                scheduler.wait_http(scheduler_metrics)
                yield Stack(
                    env=env,
                    replicas=urls,
                    scheduler_metrics=scheduler_metrics,
                    admin={"Authorization": f"Bearer {(home / 'admin.token').read_text().strip()}"},
                    redis_url=redis_url,
                    services=(mlflow, *replicas, scheduler),
                    tmp=tmp,
                )
    shutil.rmtree(tmp / "mlartifacts", ignore_errors=True)


def _detailed(stack: Stack, url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/health/detailed", headers=stack.admin, timeout=HTTP_TIMEOUT)
    assert 200 == response.status_code, response.text
    body: dict[str, Any] = response.json()
    return body


def test_both_replicas_ingest_into_one_ledger_that_qerberos_verify_finds_intact(stack: Stack) -> None:
    a, b = stack.replicas
    with httpx.Client(headers=stack.admin, timeout=HTTP_TIMEOUT) as client:
        through_a = [client.post(f"{a}/audit", json=event_body(n, verdict="ALLOW")) for n in range(3)]
        through_b = client.post(f"{b}/audit/batch", json=[event_body(n, verdict="ALLOW") for n in range(3, 6)])
        assert [201, 201, 201, 201] == [r.status_code for r in (*through_a, through_b)], through_b.text
        from_a = through_a[0].json()["data"]["id"]
        from_b = through_b.json()["data"]["events"][0]["id"]
        # Each replica reads what the other one wrote: one ledger.
        assert (200, 200) == (
            client.get(f"{b}/audit/{from_a}").status_code,
            client.get(f"{a}/audit/{from_b}").status_code,
        )

    verified = cli(stack.env, "verify")
    assert (0, True) == (verified.returncode, verified.stdout.startswith("intact: ")), verified.stdout + verified.stderr
    size = int(verified.stdout.split()[1])
    assert size >= 6


def test_detailed_health_on_each_replica_reports_the_database_redis_and_mlflow_up(stack: Stack) -> None:
    bodies = [_detailed(stack, url) for url in stack.replicas]
    for body in bodies:
        dependencies = {name: body["dependencies"][name]["status"] for name in ("database", "redis", "mlflow")}
        assert {"database": "up", "redis": "up", "mlflow": "up"} == dependencies, body
        assert "healthy" == body["status"], body
    assert bodies[0]["ledger"]["size"] == bodies[1]["ledger"]["size"]  # the same ledger behind both
    assert bodies[0]["pid"] != bodies[1]["pid"]


def test_the_rate_limit_is_shared_through_redis_across_the_replicas(stack: Stack) -> None:
    """RATE_LIMIT + 4 requests alternate between the replicas: each one alone sees far fewer than
    RATE_LIMIT, so the 429s can only come from the counter they share in Redis."""
    name = f"ratelimit-{uuid.uuid4().hex[:8]}"
    created = cli(stack.env, "identity", "create", name, "--permission", "audit:read")
    assert 0 == created.returncode, created.stdout + created.stderr
    token = created.stdout.strip().splitlines()[-1].split()[-1]
    answers: list[tuple[int, int]] = []
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT) as client:
        for n in range(RATE_LIMIT + 4):
            response = client.get(f"{stack.replicas[n % 2]}/ledger/key")
            answers.append((n % 2, response.status_code))
            if response.status_code == 429:
                assert int(response.headers["Retry-After"]) >= 1
    assert [200] * RATE_LIMIT == [status for _, status in answers[:RATE_LIMIT]], answers
    assert [(0, 429), (1, 429), (0, 429), (1, 429)] == answers[RATE_LIMIT:]
    redis = Redis.from_url(stack.redis_url, socket_timeout=5)
    try:
        assert RATE_LIMIT + 4 == int(redis.get(f"qerberos:ratelimit:local:{name}") or 0)
    finally:
        redis.close()


def test_the_scheduler_serves_its_metrics(stack: Stack) -> None:
    response = httpx.get(stack.scheduler_metrics, timeout=HTTP_TIMEOUT)
    assert 200 == response.status_code
    assert "qerberos_report_runs_total" in response.text
    assert "process_resident_memory_bytes" in response.text
    assert all(service.process.poll() is None for service in stack.services), "a process of the stack died"


def test_a_second_replica_starts_on_the_same_qerberos_home(stack: Stack) -> None:
    port = free_port()
    replica = Service(
        "replica-c", [str(BIN / "qerberos"), "serve"], {**stack.env, "QERBEROS_PORT": str(port)}, stack.tmp / "logs"
    )
    with running(replica):
        replica.wait_http(f"http://127.0.0.1:{port}/health/ready", timeout=60)
