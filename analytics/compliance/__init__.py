"""Compliance reports' computations (Polars): integrity, activity, security, GDPR and the controls of
SOC 2, ISO 27001 and GDPR, with their charts. The notebook ``notebooks/compliance_report.ipynb`` only
calls these (through ``pipelines.report_build.build_report``, which reads the stores) and displays the
results; ``pipelines.reports`` runs it."""

from __future__ import annotations

from analytics.compliance.controls import FRAMEWORKS
from analytics.compliance.evidence import FAILED, NO_EVIDENCE, PASSED, Check, Control, Status
from analytics.compliance.period import Period, iso
from analytics.compliance.report import (
    SUMMARY_CSV,
    SUMMARY_JSON,
    ComplianceReport,
    summary,
    write_summary,
)
from qerberos.instants import parse_instant

__all__ = [
    "FAILED",
    "FRAMEWORKS",
    "NO_EVIDENCE",
    "PASSED",
    "SUMMARY_CSV",
    "SUMMARY_JSON",
    "Check",
    "ComplianceReport",
    "Control",
    "Period",
    "Status",
    "iso",
    "parse_instant",
    "summary",
    "write_summary",
]
