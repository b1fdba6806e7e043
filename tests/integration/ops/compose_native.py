"""docker-compose.yml run natively: each service's own command and environment, as compose would give them
with ``ops/dev/compose.env``, started as plain processes on this machine (no container engine runs here).

What changes, and only that:
- addresses: each service's port is a free loopback port (``--port``, ``QERBEROS_PORT``, the metrics ports,
  ``--web.listen-address``), services listen on 127.0.0.1 rather than 0.0.0.0, and the names compose's DNS
  would answer (``redis:6379``, ``mlflow:5000``, ...) become those ports;
- PostgreSQL is this machine's server, with a fresh database for the ledger and one for MLflow;
- paths: named volumes are directories of the test, bind mounts are the repository's files, the metrics
  token secret is a file;
- Prometheus' configuration is ops/prometheus/prometheus.yml with the addresses above, and with the replicas
  listed statically: its DNS service discovery asks Docker's DNS, which does not exist here. nginx's
  configuration is ops/nginx/nginx.conf with the addresses above;
- Alertmanager's cluster port is off (one instance; several test runs share this machine).

Grafana is not run: no package of it exists for this machine (its provisioning is checked in
tests/unit/ops/test_grafana.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import POSTGRES_ADMIN_URL, free_port
from tests.integration.ops.stack import BIN, REPO, Service, fresh_postgres_database
from tests.unit.ops._deploy import DEV_ENV_FILE, PROMETHEUS_DIR, load_compose, read_env_file

DEV_ENVIRONMENT = read_env_file(DEV_ENV_FILE)
COMPOSE = load_compose(DEV_ENVIRONMENT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
NOT_RUN = {"grafana": "no Grafana package exists for this machine", "postgres": "this machine's server stands in"}
REPLICAS = 2  # `docker compose up -d --scale qerberos=2`
# The port each service listens on inside the stack.
PORTS = {
    "qerberos": 3000, "proxy": 3000, "mlflow": 5000, "redis": 6379, "squid": 3010, "qonsent": 3020,
    "prometheus": 9090, "alertmanager": 9093, "scheduler": 9465, "detector": 9466,
}  # fmt: skip
# Executables of the images' entry points, as this machine's packages install them.
EXECUTABLES = {
    "qerberos": str(BIN / "qerberos"),
    "mlflow": str(BIN / "mlflow"),
    "redis-server": "/usr/bin/redis-server",
    "prometheus": "/usr/bin/prometheus",
    "alertmanager": "/usr/bin/prometheus-alertmanager",
    "nginx": "/usr/sbin/nginx",
}
_DATABASE_URL = re.compile(r"(postgresql(?:\+psycopg)?)://qerberos:[^@]*@postgres:5432/(qerberos|mlflow)")
_HEALTH_URL = re.compile(r"http://127\.0\.0\.1:(\d+)(/[^'\"\s]*)")


@dataclasses.dataclass
class NativeStack:
    """The running stack: its services, addresses and what the tests need to talk to it."""

    root: Path
    ports: dict[str, int]
    replica_ports: list[int]
    databases: dict[str, str]
    services: dict[str, Service] = dataclasses.field(default_factory=dict)
    health: dict[str, Callable[[], bool]] = dataclasses.field(default_factory=dict)
    environments: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    @property
    def replica_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.replica_ports]

    def cli_environment(self) -> dict[str, str]:
        """The environment of `qerberos` commands run against the stack (the init service's)."""
        return dict(self.environments["init"])


def base_environment() -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("QERBEROS_")}
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def _addresses(stack: NativeStack) -> dict[str, str]:
    """``host:port`` as the stack's DNS would answer it -> the native address."""
    mapped = {f"{name}:{port}": f"127.0.0.1:{stack.ports[name]}" for name, port in PORTS.items() if name in stack.ports}
    mapped["qerberos:3000"] = f"127.0.0.1:{stack.replica_ports[0]}"  # nginx's upstream: one replica
    mapped["localhost:9090"] = f"127.0.0.1:{stack.ports['prometheus']}"
    return mapped


def native_text(text: str, stack: NativeStack, mounts: Mapping[str, str]) -> str:
    """A string of a service's command or environment, addressed and pathed for this machine."""
    text = _DATABASE_URL.sub(lambda m: f"{m[1]}://{stack.databases[m[2]]}", text)
    for compose_address, native in _addresses(stack).items():
        text = text.replace(compose_address, native)
    for target in sorted(mounts, key=len, reverse=True):
        if text == target or text.startswith(target + "/") or f"={target}" in text:
            text = text.replace(target, mounts[target], 1)
    return text


def _mounts(name: str, service: dict[str, Any], stack: NativeStack) -> dict[str, str]:
    """Container path -> host path, for the service's volumes and secrets."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes") or []:
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts[target] = str(REPO / source[2:])
        else:
            directory = stack.root / "volumes" / source
            directory.mkdir(parents=True, exist_ok=True)
            mounts[target] = str(directory)
    for secret in service.get("secrets") or []:
        path = stack.root / "secrets" / secret["source"]
        path.parent.mkdir(exist_ok=True)
        path.write_text(DEV_ENVIRONMENT["METRICS_TOKEN"])
        path.chmod(0o600)
        mounts[f"/run/secrets/{secret['target']}"] = str(path)
    if name == "prometheus":
        mounts["/etc/prometheus"] = str(_prometheus_config(stack, mounts))
    if name == "proxy":
        mounts["/etc/nginx/nginx.conf"] = str(_nginx_config(stack))
    return mounts


def _prometheus_config(stack: NativeStack, mounts: Mapping[str, str]) -> Path:
    directory = stack.root / "prometheus-config"
    directory.mkdir(exist_ok=True)
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    addresses = _addresses(stack)
    for job in config["scrape_configs"]:
        if "dns_sd_configs" in job:  # Docker's DNS answers one A record per replica; here they are listed
            del job["dns_sd_configs"]
            job["static_configs"] = [{"targets": [f"127.0.0.1:{port}" for port in stack.replica_ports]}]
        for group in job.get("static_configs", []):
            group["targets"] = [addresses.get(target, target) for target in group["targets"]]
        if "authorization" in job:
            job["authorization"]["credentials_file"] = mounts["/run/secrets/metrics_token"]
    for manager in config["alerting"]["alertmanagers"]:
        for group in manager["static_configs"]:
            group["targets"] = [addresses[target] for target in group["targets"]]
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copy(PROMETHEUS_DIR / "alerts.yml", directory / "alerts.yml")
    return directory


def _nginx_config(stack: NativeStack) -> Path:
    text = (REPO / "ops" / "nginx" / "nginx.conf").read_text()
    text = text.replace("listen 3000;", f"listen 127.0.0.1:{stack.ports['proxy']};")
    text = text.replace("pid /tmp/nginx.pid;", f"pid {stack.root / 'nginx.pid'};")
    for compose_address, native in _addresses(stack).items():
        text = text.replace(compose_address, native)
    path = stack.root / "nginx.conf"
    path.write_text(text)
    return path


def command_and_environment(name: str, stack: NativeStack, port: int) -> tuple[list[str], dict[str, str]]:
    """The service's compose command and environment, natively (see the module doc)."""
    service = SERVICES[name]
    mounts = _mounts(name, service, stack)
    given = service.get("environment") or {}
    environment = {key: native_text(str(value), stack, mounts) for key, value in given.items()}
    command = [native_text(str(argument), stack, mounts) for argument in service.get("command") or []]
    if environment.get("QERBEROS_HOST") == "0.0.0.0":
        environment["QERBEROS_HOST"] = "127.0.0.1"
    if name == "qerberos":
        environment["QERBEROS_PORT"] = str(port)
    if name in ("scheduler", "detector"):
        environment[f"QERBEROS_{name.upper()}_METRICS_PORT"] = str(port)
    if "--port" in command:
        command[command.index("--port") + 1] = str(port)
    if "--host" in command:
        command[command.index("--host") + 1] = "127.0.0.1"
    if name == "redis":
        command += ["--port", str(port), "--bind", "127.0.0.1"]
    elif name == "prometheus":
        command = ["prometheus", *command, f"--web.listen-address=127.0.0.1:{port}"]
    elif name == "alertmanager":
        command = ["alertmanager", *command, f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="]
    elif name == "proxy":  # the nginx image's command
        command = ["nginx", "-c", mounts["/etc/nginx/nginx.conf"], "-e", "stderr", "-g", "daemon off;"]
    command[0] = EXECUTABLES[command[0]]
    return command, {**base_environment(), **environment}


def health_check(name: str, stack: NativeStack, port: int) -> Callable[[], bool]:
    """The service's compose health check, against its native port."""
    test = " ".join(SERVICES[name].get("healthcheck", {}).get("test", []))
    if "redis-cli" in test:
        return lambda: _succeeds(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "ping"])
    found = _HEALTH_URL.search(test)
    assert found is not None, f"{name}: no health check URL in {test!r}"
    url = f"http://127.0.0.1:{port}{found[2]}"
    return lambda: httpx.get(url, timeout=2.0).status_code == 200


def _succeeds(command: list[str]) -> bool:
    return subprocess.run(command, capture_output=True, timeout=10, check=False).returncode == 0


def native_service(name: str, stack: NativeStack, port: int, label: str | None = None) -> Service:
    command, environment = command_and_environment(name, stack, port)
    label = label or name
    stack.environments[label] = environment
    return Service(label, command, environment, stack.root / "logs", cwd=stack.root)


@contextlib.contextmanager
def databases() -> Iterator[dict[str, str]]:
    """Fresh PostgreSQL databases standing in for the stack's `qerberos` and `mlflow` (libpq URLs without
    the scheme, as the compose URLs are rewritten)."""
    with fresh_postgres_database("compose_ledger") as ledger, fresh_postgres_database("compose_mlflow") as mlflow:
        yield {name: url.split("://", 1)[1] for name, url in (("qerberos", ledger), ("mlflow", mlflow))}


def new_stack(root: Path, databases: dict[str, str]) -> NativeStack:
    ports = {name: free_port() for name in PORTS if name != "qerberos"}
    return NativeStack(root, ports, [free_port() for _ in range(REPLICAS)], databases)


def admin_database_url(stack: NativeStack) -> str:
    """The ledger's database as this machine's administrator reaches it."""
    return POSTGRES_ADMIN_URL.split("://", 1)[0] + "://" + stack.databases["qerberos"]
