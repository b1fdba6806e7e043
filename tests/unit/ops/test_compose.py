"""docker-compose.yml: valid by the Compose Specification, scalable, and configured only with settings
that qerberos reads (no container engine runs here, so the file itself is what is tested)."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from typing import Any

import jsonschema
import pytest

from qerberos.settings import Settings
from tests.unit.ops._deploy import COMPOSE_FILE, DEV_ENV_FILE, REPO, MissingVariable, load_compose, read_env_file

SCHEMA_FILE = REPO / "tests" / "fixtures" / "compose-spec.json"
SETTINGS_VARIABLES = frozenset(f"QERBEROS_{field.name.upper()}" for field in dataclasses.fields(Settings))
CORE_SERVICES = {
    "init", "qerberos", "proxy", "postgres", "redis", "mlflow", "prometheus", "alertmanager", "grafana", "scheduler",
    "detector",
}  # fmt: skip
REQUIRED_VARIABLES = {
    "POSTGRES_PASSWORD", "METRICS_TOKEN", "KEY_PASSPHRASE", "SQUID_URL", "QONSENT_URL", "GRAFANA_ADMIN_PASSWORD",
    "RUNBOOK_URL",
}  # fmt: skip
DEV_SERVICES = {"squid", "qonsent"}


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {str(key): str(value) for key, value in environment.items()}


def _schema_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(document)]


def test_compose_file_validates_against_the_compose_specification(compose: dict[str, Any]) -> None:
    assert _schema_errors(compose) == []


def test_schema_validation_rejects_an_unknown_service_key(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["qerberos"]["replica_count"] = 3
    assert any("replica_count" in error for error in _schema_errors(broken))


def test_stack_has_the_issue_7_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == CORE_SERVICES | DEV_SERVICES


def test_every_qerberos_variable_set_is_a_settings_field(services: dict[str, dict[str, Any]]) -> None:
    unknown = {
        (name, variable)
        for name, service in services.items()
        for variable in _environment(service)
        if variable.startswith("QERBEROS_") and variable not in SETTINGS_VARIABLES
    }
    assert set() == unknown


def test_qerberos_replicas_reach_the_stack_services(services: dict[str, dict[str, Any]]) -> None:
    environment = _environment(services["qerberos"])
    assert re.fullmatch(
        r"postgresql://qerberos:\$\{POSTGRES_PASSWORD:\?[^}]*\}@postgres:5432/qerberos",
        environment["QERBEROS_DATABASE_URL"],
    )
    assert environment["QERBEROS_REDIS_URL"] == "redis://redis:6379/0"
    assert environment["QERBEROS_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert environment["QERBEROS_AUTH_MODE"] == "remote"
    assert environment["QERBEROS_SQUID_URL"].startswith("${SQUID_URL:?")
    assert environment["QERBEROS_QONSENT_URL"].startswith("${QONSENT_URL:?")
    assert environment["QERBEROS_HOST"] == "0.0.0.0"
    assert environment["QERBEROS_PORT"] == "3000"
    assert environment["QERBEROS_HOME"] == "/var/lib/qerberos"
    assert environment["QERBEROS_METRICS_TOKEN"].startswith("${METRICS_TOKEN:?")


def test_no_service_has_a_fixed_container_name(services: dict[str, dict[str, Any]]) -> None:
    assert [name for name, service in services.items() if "container_name" in service] == []


def test_qerberos_publishes_no_host_port_and_exposes_3000(services: dict[str, dict[str, Any]]) -> None:
    qerberos = services["qerberos"]
    assert "ports" not in qerberos
    assert qerberos["expose"] == ["3000"]
    assert "scale" not in qerberos
    assert "replicas" not in (qerberos.get("deploy") or {})


def test_only_the_proxy_publishes_a_port_and_it_is_3000(services: dict[str, dict[str, Any]]) -> None:
    published = {name: service["ports"] for name, service in services.items() if "ports" in service}
    assert published == {"proxy": ["3000:3000"]}


def test_qerberos_has_the_runbook_resource_limits(services: dict[str, dict[str, Any]]) -> None:
    assert services["qerberos"]["deploy"]["resources"]["limits"] == {"memory": "1G", "cpus": "1.0"}


def test_qerberos_and_postgres_are_health_checked(services: dict[str, dict[str, Any]]) -> None:
    assert "/health/live" in " ".join(services["qerberos"]["healthcheck"]["test"])
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]


def test_proxy_balances_over_the_qerberos_service_name() -> None:
    config = (REPO / "ops" / "nginx" / "nginx.conf").read_text(encoding="utf-8")
    assert re.search(r"^\s*listen 3000;", config, re.MULTILINE)
    assert re.search(r"^\s*resolver 127\.0\.0\.11 ", config, re.MULTILINE)  # re-resolve as replicas change
    assert "set $qerberos http://qerberos:3000;" in config
    assert "proxy_pass $qerberos;" in config


def test_qerberos_sees_each_client_address_through_the_proxy(services: dict[str, dict[str, Any]]) -> None:
    """Failed authentication is limited per client address: behind the proxy that must be the client's."""
    config = (REPO / "ops" / "nginx" / "nginx.conf").read_text(encoding="utf-8")
    assert re.search(r"^\s*proxy_set_header X-Forwarded-For \$remote_addr;", config, re.MULTILINE)
    assert "*" == services["qerberos"]["environment"]["FORWARDED_ALLOW_IPS"]


def test_postgres_mlflow_and_prometheus_keep_data_in_named_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "mlflow-artifacts:/mlartifacts" in services["mlflow"]["volumes"]
    assert "prometheus-data:/prometheus" in services["prometheus"]["volumes"]
    for name in ("init", "qerberos", "scheduler", "detector"):
        assert "qerberos-home:/var/lib/qerberos" in services[name]["volumes"]
    assert "alertmanager-data:/alertmanager" in services["alertmanager"]["volumes"]
    assert "grafana-data:/var/lib/grafana" in services["grafana"]["volumes"]
    assert {
        "qerberos-home", "postgres-data", "mlflow-artifacts", "prometheus-data", "alertmanager-data", "grafana-data",
    } == set(compose["volumes"])  # fmt: skip


def test_mlflow_server_uses_postgres_its_artifact_volume_and_allowed_hosts(
    services: dict[str, dict[str, Any]],
) -> None:
    command = services["mlflow"]["command"]
    assert command[:2] == ["mlflow", "server"]
    options = dict(zip(command[2::2], command[3::2], strict=True))
    assert re.fullmatch(
        r"postgresql\+psycopg://qerberos:\$\{POSTGRES_PASSWORD:\?[^}]*\}@postgres:5432/mlflow",
        options["--backend-store-uri"],
    )
    assert options["--artifacts-destination"] == "/mlartifacts"
    assert "mlflow:5000" in options["--allowed-hosts"].split(",")
    assert options["--port"] == "5000"


def test_prometheus_loads_the_rules_and_the_metrics_token(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    assert "./ops/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    # prometheus.yml's external label `runbook` is "${RUNBOOK_URL}": expanded from this environment.
    assert "--enable-feature=expand-external-labels" in prometheus["command"]
    assert prometheus["environment"]["RUNBOOK_URL"].startswith("${RUNBOOK_URL:?")
    assert prometheus["secrets"] == [{"source": "metrics_token", "target": "metrics_token"}]
    assert compose["secrets"]["metrics_token"] == {"environment": "METRICS_TOKEN"}


def test_dev_servers_exist_only_in_the_dev_profile_and_serve_the_mounted_fixtures(
    services: dict[str, dict[str, Any]],
) -> None:
    profiles = {name: service.get("profiles") for name, service in services.items()}
    assert {name: ["dev"] for name in DEV_SERVICES} == {name: p for name, p in profiles.items() if p}
    for name in DEV_SERVICES:
        service = services[name]
        assert ["./ops/dev:/etc/qerberos/dev:ro"] == service["volumes"]
        command = service["command"]
        fixture = command[command.index("--fixture") + 1]
        assert fixture == f"/etc/qerberos/dev/{name}-fixture.json"
        assert (REPO / "ops" / "dev" / f"{name}-fixture.json").is_file()  # what the mount puts there
        assert {"QERBEROS_HOST": "0.0.0.0"} == service["environment"]  # the CLI listens on QERBEROS_HOST


def test_every_required_variable_is_refused_when_missing_and_the_dev_env_file_sets_them_all() -> None:
    """Interpolated as compose does it: without any one required variable the file does not load; with
    ops/dev/compose.env alone it does, and that file turns on the `dev` profile and points qerberos at it."""
    development = read_env_file(DEV_ENV_FILE)
    assert REQUIRED_VARIABLES <= set(development)
    for variable in sorted(REQUIRED_VARIABLES):
        with pytest.raises(MissingVariable, match=variable):
            load_compose({name: value for name, value in development.items() if name != variable})
    compose = load_compose(development)
    environment = compose["services"]["qerberos"]["environment"]
    assert "dev" == development["COMPOSE_PROFILES"]
    assert ("http://squid:3010", "http://qonsent:3020") == (
        environment["QERBEROS_SQUID_URL"],
        environment["QERBEROS_QONSENT_URL"],
    )


def test_the_header_lists_exactly_the_required_variables() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    required = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", text))
    assert REQUIRED_VARIABLES == required


def test_alertmanager_and_grafana_load_their_configuration_from_ops(services: dict[str, dict[str, Any]]) -> None:
    alertmanager, grafana = services["alertmanager"], services["grafana"]
    assert "./ops/alertmanager:/etc/alertmanager:ro" in alertmanager["volumes"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in alertmanager["command"]
    assert (REPO / "ops" / "alertmanager" / "alertmanager.yml").is_file()
    assert {"./ops/grafana/provisioning:/etc/grafana/provisioning:ro",
            "./ops/grafana/dashboards:/etc/grafana/dashboards:ro"} <= set(grafana["volumes"])  # fmt: skip
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert "alertmanager" in services["prometheus"]["depends_on"]


def test_dependencies_name_services_of_the_file(services: dict[str, dict[str, Any]]) -> None:
    missing = {
        (name, dependency)
        for name, service in services.items()
        for dependency in service.get("depends_on") or {}
        if dependency not in services
    }
    assert set() == missing


def test_every_interpolated_variable_is_documented_in_the_header() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    variables = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))
    assert set() == {variable for variable in variables if variable not in header}


@pytest.mark.parametrize("name", ["init", "qerberos", "mlflow", "scheduler", "detector", "squid", "qonsent"])
def test_python_services_run_the_image_built_from_the_dockerfile(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    assert service["image"] == "${QERBEROS_IMAGE:-qerberos:1.0.0}"
    assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}
