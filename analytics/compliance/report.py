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
from analytics.compliance.evidence import FAILED, NO_EVIDENCE, PASSED, VERDICTS, Control, Verdict, verdict
from analytics.compliance.gdpr import Gdpr
from analytics.compliance.integrity import IntegrityResult
from analytics.compliance.operations import Operations
from analytics.compliance.period import Period, iso
from analytics.compliance.retention import Retention
from analytics.compliance.security import ACTIVITY_CLOCK, Security

FRAMEWORK_NAMES = {
    "gdpr": "GDPR",
    "soc2": "SOC 2",
    "iso27001": "ISO/IEC 27001:2022",
    "custom": "SOC 2, ISO 27001 and GDPR",
}
#: The clock behind each count of the report, as it states them.
CLOCKS = {
    "events": "event clock: each event's occurred_at (the time its module stamped), in the period",
    "alerts": ACTIVITY_CLOCK + "; raised_at shown beside it",
    "incidents": ACTIVITY_CLOCK + "; hours open from raised_at to closure, or to generation time",
    "riskChanges": "activity clock: the ledger time the assessment was computed at; the receipt shown beside it",
    "erasures": "event clock for the request; details left behind counted at generation time",
    "retention": "generation time: age of the details still held when the report was generated",
}

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
    retention: Retention
    operations: Operations
    controls: list[Control]

    @property
    def title(self) -> str:
        """``Acme: SOC 2 compliance report, 2026-01-05 to 2026-01-11`` (the last day the period includes): the
        HTML's title, the PDF's, every page's header."""
        who = f"{self.organization}: " if self.organization else ""
        name = FRAMEWORK_NAMES.get(self.framework, self.framework)
        last = (self.period.end - dt.timedelta(milliseconds=1)).astimezone(dt.UTC)
        return f"{who}{name} compliance report, {self.period.start.astimezone(dt.UTC):%Y-%m-%d} to {last:%Y-%m-%d}"

    @property
    def verdict(self) -> Verdict:
        return verdict(self.controls, self.integrity.status)

    def shows(self, section: str) -> bool:
        """Whether the framework's report has a section (``gdpr`` only for GDPR and custom reports)."""
        return section != "gdpr" or self.framework in ("gdpr", "custom")


def summary(report: ComplianceReport) -> dict[str, Any]:
    controls = [control.to_json() for control in report.controls]
    counts = {status: sum(1 for c in report.controls if c.status == status) for status in (PASSED, FAILED, NO_EVIDENCE)}
    return {
        "reportId": report.report_id,
        "title": report.title,
        "type": report.framework,
        "organization": report.organization,
        "period": report.period.to_json(),
        "generatedAt": iso(report.generated_at),
        "summary": {
            "verdict": report.verdict,
            "verdictMeaning": VERDICTS[report.verdict],
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
        "retention": report.retention.to_json(),
        "operations": report.operations.to_json(),
        "clocks": CLOCKS,
        "verdicts": VERDICTS,
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

    for section in ("summary", "integrity", "activity", "security", "gdpr", "retention", "operations", "clocks"):
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
