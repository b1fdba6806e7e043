"""The alert rules, Prometheus' and Alertmanager's configuration: promtool and amtool accept them, every rule is
unit-tested, and every runbook_url is absolute (the external label `runbook`, from RUNBOOK_URL)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.unit.ops._deploy import PROMETHEUS_DIR, REPO, load_yaml

ALERTMANAGER_CONFIG = REPO / "ops" / "alertmanager" / "alertmanager.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"

# alert -> (severity, `for`, a fragment its expression must contain): the runbook's four and qerberos's own.
EXPECTED_ALERTS: dict[str, tuple[str, str | None, str]] = {
    "QerberosHighErrorRate": ("critical", "5m", "> 0.01"),
    "QerberosHighLatency": ("warning", "5m", "histogram_quantile(0.99"),
    "QerberosDown": ("critical", "2m", 'up{job="qerberos"} == 0'),
    "QerberosNoReplicaUp": ("critical", "2m", 'absent(up{job="qerberos"} == 1)'),
    "QerberosHighMemory": ("warning", "10m", "qerberos_memory_limit_bytes"),
    "QerberosCheckpointStale": ("warning", "5m", "qerberos_unsigned_entries_age_seconds"),
    "QerberosVerificationFailed": ("critical", None, "increase(qerberos_verification_failures_total"),
    "QerberosVerificationOverdue": ("warning", "15m", "qerberos_verification_last_success_timestamp_seconds"),
    "QerberosCheckpointRefused": ("critical", None, "increase(qerberos_checkpoint_refusals_total"),
    "QerberosWitnessLagging": ("warning", "5m", "qerberos_witness_lag_seconds"),
    "QerberosIngestionStalled": ("critical", "5m", "time() - max by (job) (qerberos_last_ingest_timestamp_seconds"),
    "QerberosDetectorModelNotLoaded": ("warning", "10m", "qerberos_detector_model_loaded"),
    "QerberosDetectorDown": ("warning", "5m", 'up{job="qerberos-detector"} == 0'),
    "QerberosDetectorLagging": ("warning", "5m", "qerberos_detector_caught_up_timestamp_seconds"),
    "QerberosDetectorErrors": ("warning", "10m", "rate(qerberos_detector_errors_total"),
    "QerberosEventPublishingLagging": ("warning", "5m", "qerberos_events_publish_lag_seconds"),
    "QerberosSchedulerDown": ("warning", "5m", 'up{job="qerberos-scheduler"} == 0'),
    "QerberosReportFailed": ("warning", None, 'outcome=~"error|integrity_failed"'),
    "QerberosReportMissed": ("warning", "5m", "qerberos_report_overdue_seconds"),
}
RUNBOOK_URL = "{{ $externalLabels.runbook }}#"


def _run(promtool: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def _rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def test_promtool_check_rules_accepts_alerts(promtool: str) -> None:
    result = _run(promtool, "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_every_rule_pass(promtool: str) -> None:
    result = _run(promtool, "test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config_accepts_prometheus_yml(promtool: str, tmp_path: Path) -> None:
    """Full check (rule files and the token file must exist), with the container's secret path mapped to a
    temporary file: the only change made to the configuration under test."""
    token = tmp_path / "metrics_token"
    token.write_text("test-token\n", encoding="utf-8")
    config = PROMETHEUS_CONFIG.read_text(encoding="utf-8")
    assert "/run/secrets/metrics_token" in config
    (tmp_path / "prometheus.yml").write_text(config.replace("/run/secrets/metrics_token", str(token)), "utf-8")
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    result = _run(promtool, "check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_are_exactly_the_expected_set() -> None:
    assert sorted(EXPECTED_ALERTS) == sorted(rule["alert"] for rule in _rules())


@pytest.mark.parametrize("name", sorted(EXPECTED_ALERTS))
def test_alert_has_severity_for_expression_and_annotations(name: str) -> None:
    severity, duration, fragment = EXPECTED_ALERTS[name]
    (rule,) = [rule for rule in _rules() if rule["alert"] == name]
    assert severity == rule["labels"]["severity"]
    assert duration == rule.get("for")
    assert fragment in " ".join(rule["expr"].split())
    annotations = rule["annotations"]
    assert {"summary", "description", "runbook_url"} <= set(annotations)
    assert f"{RUNBOOK_URL}{name.lower()}" == annotations["runbook_url"]


def test_runbook_has_a_heading_for_every_alert_once_it_exists() -> None:
    """docs/RUNBOOK.md comes later in issue 7; from then on each runbook_url anchor must resolve."""
    runbook = REPO / "docs" / "RUNBOOK.md"
    if not runbook.exists():
        return
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in runbook.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    assert set() == {name.lower() for name in EXPECTED_ALERTS} - anchors


def test_every_rule_has_a_firing_and_a_silent_promtool_case() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for case in load_yaml(ALERTS_TEST)["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    assert load_yaml(ALERTS_TEST)["rule_files"] == ["alerts.yml"]
    assert set(EXPECTED_ALERTS) == firing
    assert set(EXPECTED_ALERTS) == silent


def test_prometheus_scrapes_every_replica_with_the_metrics_token() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "qerberos"]
    assert job["metrics_path"] == "/metrics"
    assert job["dns_sd_configs"] == [{"names": ["qerberos"], "type": "A", "port": 3000, "refresh_interval": "15s"}]
    assert job["authorization"] == {"type": "Bearer", "credentials_file": "/run/secrets/metrics_token"}


def test_the_runbook_address_comes_from_one_setting_as_an_external_label() -> None:
    """prometheus.yml sets the label from RUNBOOK_URL (compose turns on its expansion and requires the
    variable); the promtool cases render every runbook_url as an absolute https address."""
    config = load_yaml(PROMETHEUS_CONFIG)
    assert "${RUNBOOK_URL}" == config["global"]["external_labels"]["runbook"]
    cases = load_yaml(ALERTS_TEST)["tests"]
    urls = {
        annotation["runbook_url"]
        for case in cases
        for check in case["alert_rule_test"]
        for alert in check.get("exp_alerts") or []
        for annotation in [alert["exp_annotations"]]
    }
    assert all(case["external_labels"]["runbook"].startswith("https://") for case in cases)
    assert set() == {url for url in urls if not url.startswith("https://runbooks.example.org/qerberos/RUNBOOK.md#")}


def test_prometheus_sends_alerts_to_the_stack_alertmanager() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    assert [{"static_configs": [{"targets": ["alertmanager:9093"]}]}] == config["alerting"]["alertmanagers"]


def test_amtool_accepts_the_alertmanager_configuration() -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail("amtool is not on PATH: run `make system-deps` (Debian package `prometheus-alertmanager`)")
    result = subprocess.run(
        [amtool, "check-config", str(ALERTMANAGER_CONFIG)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
