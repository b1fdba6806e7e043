"""The Grafana dashboard and its provisioning: every query parses (promtool's parser and promql-parser),
every panel reads the provisioned Prometheus, and the runbook's signals are all on it. Whether the series
it names exist is checked against the real processes' /metrics in tests/integration/ops/."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.unit.ops._deploy import load_yaml
from tests.unit.ops._promql import DASHBOARDS, GRAFANA_DIR, as_rule_file, dashboard_expressions, selectors

# The runbook's signals (docs/RUNBOOK.md, "Dashboards and alert routing") and the series that show them.
SIGNALS = {
    "request rate": "qerberos_http_requests_total",
    "p99 per route": "qerberos_http_request_duration_seconds_bucket",
    "ingest rate": "qerberos_events_ingested_total",
    "ledger size": "qerberos_ledger_size",
    "checkpoint age": "qerberos_checkpoint_age_seconds",
    "detector scores": "qerberos_detector_score_bucket",
    "detector alerts": "qerberos_alerts_created_total",
    "report runs": "qerberos_report_runs_total",
    "memory": "process_resident_memory_bytes",
    "memory limit": "qerberos_memory_limit_bytes",
}


def _datasource() -> dict[str, Any]:
    (source,) = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert isinstance(source, dict)
    return source


def _panels() -> list[dict[str, Any]]:
    return [
        panel
        for path in DASHBOARDS
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]
        if panel["type"] != "row"
    ]


def test_the_datasource_is_the_stack_prometheus() -> None:
    source = _datasource()
    assert ("prometheus", "http://prometheus:9090", True) == (source["type"], source["url"], source["isDefault"])


def test_dashboards_are_provisioned_from_the_directory_compose_mounts(services: dict[str, dict[str, Any]]) -> None:
    (provider,) = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "qerberos.yml")["providers"]
    mounts = dict(volume.split(":")[:2] for volume in services["grafana"]["volumes"] if volume.startswith("./"))
    assert (
        "./ops/grafana/dashboards" == {target: source for source, target in mounts.items()}[provider["options"]["path"]]
    )
    assert [GRAFANA_DIR / "dashboards" / "qerberos.json"] == DASHBOARDS


def test_every_panel_queries_the_provisioned_datasource() -> None:
    uid = _datasource()["uid"]
    panels = _panels()
    assert panels
    for panel in panels:
        assert {"type": "prometheus", "uid": uid} == panel["datasource"], panel["title"]
        assert panel["targets"], panel["title"]
        assert {uid} == {target["datasource"]["uid"] for target in panel["targets"]}
        assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"])


def test_promtool_parses_every_dashboard_query(promtool: str, tmp_path: Path) -> None:
    rules = as_rule_file(dashboard_expressions(), tmp_path / "dashboard-queries.yml")
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60,
                            check=False)  # fmt: skip
    assert 0 == result.returncode, result.stdout + result.stderr
    assert f"SUCCESS: {len(dashboard_expressions())} rules found" in result.stdout


def test_promtool_refuses_a_query_that_does_not_parse(promtool: str, tmp_path: Path) -> None:
    """The check above really parses: a broken query fails it."""
    rules = as_rule_file({"broken": "sum(rate(qerberos_http_requests_total[5m])"}, tmp_path / "broken.yml")
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60,
                            check=False)  # fmt: skip
    assert 0 != result.returncode


def test_the_dashboard_shows_every_signal_of_the_runbook() -> None:
    shown = {selector.name for expression in dashboard_expressions().values() for selector in selectors(expression)}
    assert {} == {signal: name for signal, name in SIGNALS.items() if name not in shown}


@pytest.mark.parametrize("name", sorted(dashboard_expressions()))
def test_every_dashboard_query_names_a_metric(name: str) -> None:
    assert all(selector.name for selector in selectors(dashboard_expressions()[name]))
