"""Compliance reports' computations (Polars): integrity, activity, security (on the activity clock),
personal data, retention at generation time, operations, the controls of SOC 2, ISO 27001 and GDPR
(``controls``: the catalogue; ``checks_*``: the checks; ``evidence``: checks, controls and the verdict), the
evidence index, and the charts and HTML. The notebook ``notebooks/compliance_report.ipynb`` only
calls these (through ``pipelines.report_build.build_report``, which reads the stores) and displays the
results; ``pipelines.reports`` runs it."""

from __future__ import annotations

from analytics.compliance.controls import FRAMEWORKS
from analytics.compliance.evidence import FAILED, NO_EVIDENCE, PASSED, VERDICTS, Check, Control, Status, Verdict
from analytics.compliance.period import Period, iso
from analytics.compliance.report import (
    CLOCKS,
    SUMMARY_CSV,
    SUMMARY_JSON,
    ComplianceReport,
    summary,
    write_summary,
)
from analytics.compliance.retention import RetentionPolicy
from qerberos.instants import parse_instant

__all__ = [
    "CLOCKS",
    "FAILED",
    "FRAMEWORKS",
    "NO_EVIDENCE",
    "PASSED",
    "SUMMARY_CSV",
    "SUMMARY_JSON",
    "VERDICTS",
    "Check",
    "ComplianceReport",
    "Control",
    "Period",
    "RetentionPolicy",
    "Status",
    "Verdict",
    "iso",
    "parse_instant",
    "summary",
    "write_summary",
]
