"""One compliance report's numbers: every section computed from the ledger, and the summary files.

``build_report`` is what the notebook calls; ``summary`` is the JSON the API answers with (the contract's
``ComplianceReportResponse.data`` plus the sections), ``summary_rows`` its CSV form.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from analytics.compliance.activity import Activity, summarise_activity
from analytics.compliance.controls import FRAMEWORKS, Evidence, evaluate, recommendations, violations
from analytics.compliance.evidence import FAILED, NO_EVIDENCE, PASSED, Check, Control
from analytics.compliance.gdpr import Gdpr, summarise_gdpr
from analytics.compliance.integrity import IntegrityResult, check_integrity
from analytics.compliance.period import Period, iso, load_events
from analytics.compliance.security import Security, summarise_security
from models.ledger import Ledger
from qerberos.errors import ValidationError

logger = logging.getLogger(__name__)
SUMMARY_JSON = "summary.json"
SUMMARY_CSV = "summary.csv"
DETECTOR_MODEL = "qerberos-detector"


@dataclasses.dataclass(frozen=True, slots=True)
class ComplianceReport:
    report_id: str
    framework: str
    organization: str
    period: Period
    generated_at: dt.datetime
    integrity: IntegrityResult
    activity: Activity
    security: Security
    gdpr: Gdpr
    controls: list[Control]

    def shows(self, section: str) -> bool:
        """Whether the framework's report has a section (``gdpr`` only for GDPR and custom reports)."""
        return section != "gdpr" or self.framework in ("gdpr", "custom")


def build_report(
    ledger: Ledger,
    *,
    framework: str,
    start: str | dt.datetime,
    end: str | dt.datetime,
    organization: str = "",
    report_id: str = "",
    previous_checkpoint: str | None = None,
    retention_days: int | None = None,
    tracking_uri: str = "",
) -> ComplianceReport:
    if framework not in FRAMEWORKS:
        raise ValidationError(f"unknown framework {framework!r}", details={"framework": ", ".join(FRAMEWORKS)})
    period = Period.parse(start, end)
    integrity = check_integrity(ledger, previous_checkpoint)
    engine: sa.Engine = ledger.engine
    events = load_events(engine, period)
    activity = summarise_activity(events, period)
    security = summarise_security(engine, events, period)
    gdpr = summarise_gdpr(engine, events, period, retention_days)
    evidence = Evidence(period, events, integrity, activity, security, gdpr, detector_in_service(tracking_uri))
    return ComplianceReport(
        report_id=report_id,
        framework=framework,
        organization=organization,
        period=period,
        generated_at=dt.datetime.now(dt.UTC),
        integrity=integrity,
        activity=activity,
        security=security,
        gdpr=gdpr,
        controls=evaluate(framework, evidence),
    )


def detector_in_service(tracking_uri: str) -> Check:
    """The anomaly detector's champion in the MLflow registry (no tracking URI: no evidence)."""
    name, evidence = "anomaly detector in service", f"MLflow registry: {DETECTOR_MODEL}@champion"
    if not tracking_uri:
        return Check(name, evidence, NO_EVIDENCE, "no MLflow tracking URI given to the report")
    try:
        from mlflow.tracking import MlflowClient

        version = MlflowClient(tracking_uri).get_model_version_by_alias(DETECTOR_MODEL, "champion")
    except Exception as exc:  # any registry failure: the evidence is missing
        logger.info("no detector champion at %s: %s", tracking_uri, exc.__class__.__name__)
        return Check(name, evidence, NO_EVIDENCE, "no champion detector registered")
    return Check(name, evidence, PASSED, f"version {version.version} in service")


def summary(report: ComplianceReport) -> dict[str, Any]:
    controls = [control.to_json() for control in report.controls]
    counts = {status: sum(1 for c in report.controls if c.status == status) for status in (PASSED, FAILED, NO_EVIDENCE)}
    return {
        "reportId": report.report_id,
        "type": report.framework,
        "organization": report.organization,
        "period": report.period.to_json(),
        "generatedAt": iso(report.generated_at),
        "summary": {
            "integrity": report.integrity.status,
            "totalEvents": report.activity.total_events,
            "identities": report.activity.identities,
            "denyRate": round(report.activity.deny_rate, 6),
            "controls": counts,
        },
        "violations": _integrity_violations(report.integrity) + violations(report.controls),
        "recommendations": recommendations(report.controls),
        "integrity": report.integrity.to_json(),
        "activity": report.activity.to_json(),
        "security": report.security.to_json(),
        "gdpr": report.gdpr.to_json() if report.shows("gdpr") else None,
        "controls": controls,
    }


def _integrity_violations(integrity: IntegrityResult) -> list[dict[str, str]]:
    if integrity.status != FAILED:
        return []
    detail = integrity.problem or integrity.checkpoint_detail or integrity.consistency.detail
    return [{"framework": "ledger", "control": "integrity", "check": "ledger verification", "detail": str(detail),
             "severity": "critical"}]  # fmt: skip


def summary_rows(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``section, metric, value`` rows: the headline numbers, every breakdown and every check."""
    rows: list[tuple[str, str, str]] = []

    def walk(section: str, prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(section, f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list):
            rows.append((section, prefix, json.dumps(value, default=str)))
        else:
            rows.append((section, prefix, "" if value is None else str(value)))

    for section in ("summary", "integrity", "activity", "security", "gdpr"):
        if data.get(section) is not None:
            walk(section, "", data[section])
    for control in data["controls"]:
        key = f"{control['framework']}.{control['id']}"
        rows.append(("controls", key, control["status"]))
        for check in control["checks"]:
            rows.append(("controls", f"{key}.{check['name']}", f"{check['status']}: {check['detail']}"))
    return rows


def write_summary(report: ComplianceReport, output_dir: str | Path) -> dict[str, Any]:
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    data = summary(report)
    (directory / SUMMARY_JSON).write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    with (directory / SUMMARY_CSV).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("section", "metric", "value"))
        writer.writerows(summary_rows(data))
    return data
