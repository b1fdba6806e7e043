"""One compliance report's numbers (every section, built by ``pipelines.report_build.build_report``) and the
summary files.

``summary`` is the JSON the API answers with (the contract's ``ComplianceReportResponse.data`` plus the
sections), ``summary_rows`` its CSV form.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

from analytics.compliance.activity import Activity
from analytics.compliance.controls import recommendations, violations
from analytics.compliance.evidence import FAILED, NO_EVIDENCE, PASSED, Control
from analytics.compliance.gdpr import Gdpr
from analytics.compliance.integrity import IntegrityResult
from analytics.compliance.period import Period, iso
from analytics.compliance.security import Security

SUMMARY_JSON = "summary.json"
SUMMARY_CSV = "summary.csv"


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
