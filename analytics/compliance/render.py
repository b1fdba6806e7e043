"""HTML pieces for the notebook's outputs: status badges, the integrity banner and plain tables.

Everything is escaped; tables are plain HTML (no dtype rows) so the HTML and the PDF read like a report.
"""

from __future__ import annotations

import base64
import html

import polars as pl

from analytics.compliance.evidence import FAILED, PASSED, Control, Status
from analytics.compliance.integrity import IntegrityResult
from analytics.compliance.period import iso
from analytics.compliance.report import ComplianceReport

_COLOURS = {PASSED: "#2e7d32", FAILED: "#c62828"}
_NEUTRAL = "#757575"


def badge(status: Status) -> str:
    colour = _COLOURS.get(status, _NEUTRAL)
    return (
        f'<span style="background:{colour};color:#fff;padding:1px 8px;border-radius:3px;'
        f'font-weight:bold;white-space:nowrap">{html.escape(status.upper())}</span>'
    )


def banner(integrity: IntegrityResult) -> str:
    """The top of the report: red and unmissable when the ledger fails."""
    if integrity.status == FAILED:
        reasons = []
        if not integrity.intact:
            reasons.append(f"the ledger was altered at sequence number {integrity.first_bad_seq}: {integrity.problem}")
        if integrity.checkpoint_status == FAILED:
            reasons.append(integrity.checkpoint_detail)
        if integrity.consistency.status == FAILED:
            reasons.append(integrity.consistency.detail)
        items = "".join(f"<li>{html.escape(reason)}</li>" for reason in reasons)
        return (
            '<div id="integrity-status" data-status="failed" style="background:#c62828;color:#fff;padding:14px 18px;'
            'border-radius:4px;margin:8px 0"><div style="font-size:1.5em;font-weight:bold">'
            "LEDGER INTEGRITY FAILED: this audit trail has been tampered with</div>"
            f"<ul>{items}</ul><div>Every figure below comes from records that may have been altered.</div></div>"
        )
    colour = _COLOURS.get(integrity.status, _NEUTRAL)
    word = "VERIFIED" if integrity.status == PASSED else "NOT FULLY EVIDENCED"
    return (
        f'<div id="integrity-status" data-status="{html.escape(integrity.status)}" style="background:{colour};'
        'color:#fff;padding:10px 18px;border-radius:4px;margin:8px 0;font-size:1.2em;font-weight:bold">'
        f"Ledger integrity {word}: {integrity.ledger_size:,} records re-derived"
        f"{'' if integrity.checkpoint_size is None else f', checkpoint at size {integrity.checkpoint_size:,}'}</div>"
    )


def table(frame: pl.DataFrame, *, max_rows: int = 25, caption: str = "") -> str:
    shown = frame.head(max_rows)
    head = "".join(f"<th>{html.escape(str(name))}</th>" for name in shown.columns)
    rows = "".join("<tr>" + "".join(f"<td>{_cell(value)}</td>" for value in row) + "</tr>" for row in shown.iter_rows())
    more = ""
    if frame.height > max_rows:
        more = f"<p><em>{frame.height - max_rows:,} more rows not shown.</em></p>"
    title = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<table class="report">{title}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{more}'


def key_values(pairs: dict[str, object]) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_cell(v)}</td></tr>" for k, v in pairs.items())
    return f'<table class="report">{rows}</table>'


def image(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"/>'


def _cell(value: object) -> str:
    if value is None:
        return "&mdash;"
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, str) and value in (PASSED, FAILED, "no evidence"):
        return badge(value)  # type: ignore[arg-type]
    return html.escape(str(value))


STYLE = """<style>
table.report { border-collapse: collapse; margin: 6px 0 14px; font-size: 0.92em; }
table.report th, table.report td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
table.report thead th { background: #eceff1; }
table.report caption { text-align: left; font-weight: bold; padding: 4px 0; }
pre.signed-note { font-family: monospace; background: #f5f5f5; border: 1px solid #ddd; padding: 6px 8px;
                  white-space: pre-wrap; word-break: break-all; }  /* the PDF would cut a long signature line */
@media print { .jp-Cell { break-inside: avoid; } }
</style>"""


def title(report: ComplianceReport) -> str:
    names = {"gdpr": "GDPR", "soc2": "SOC 2", "iso27001": "ISO/IEC 27001:2022", "custom": "Custom"}
    who = f"{html.escape(report.organization)}: " if report.organization else ""
    period = report.period.to_json()
    return (
        f"<h1>{who}{names.get(report.framework, report.framework)} compliance report</h1>"
        f"<p>Period {html.escape(period['startDate'])} to {html.escape(period['endDate'])} (end excluded); "
        f"generated {html.escape(iso(report.generated_at))}"
        f"{'' if not report.report_id else '; report ' + html.escape(report.report_id)}. "
        "Every figure is computed from the qerberos audit ledger.</p>"
    )


def heading(text: str, status: Status | None = None) -> str:
    return f"<h2>{html.escape(text)} {'' if status is None else badge(status)}</h2>"


def controls_table(controls: list[Control]) -> str:
    parts = []
    for control in controls:
        rows = "".join(
            f"<tr><td>{html.escape(c.name)}</td><td>{badge(c.status)}</td><td>{html.escape(c.evidence)}</td>"
            f"<td>{html.escape(c.detail)}</td></tr>"
            for c in control.checks
        )
        parts.append(
            f"<h3>{html.escape(control.framework.upper())} {html.escape(control.id)}: {html.escape(control.title)} "
            f"{badge(control.status)}</h3>"
            '<table class="report"><thead><tr><th>check</th><th>result</th><th>evidence examined</th>'
            f"<th>finding</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    return "".join(parts)
