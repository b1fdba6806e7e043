"""HTML pieces for the notebook's outputs: the page style of the PDF, the title, verdict and integrity
banners, status badges, plain tables, the controls, the scope and method and the sign-off block.

Everything is escaped; tables are plain HTML (no dtype rows) so the HTML and the PDF read like a report.
Printing (headless Chromium) follows ``page_style``: the paper size, and on every page a header with the
report's title and a footer with its id, period and "page N of M" (CSS page margin boxes); tables take the
page's width and wrap long values rather than run past its edge; instants print to the millisecond and never
wrap; a badge sits beside its heading's text, never over it.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import re

import polars as pl

from analytics.compliance.evidence import (
    FAILED,
    NO_EVIDENCE,
    OUTSIDE_THE_LEDGER,
    PASSED,
    VERDICTS,
    Control,
    Status,
    Verdict,
)
from analytics.compliance.integrity import IntegrityResult
from analytics.compliance.period import iso
from analytics.compliance.report import CLOCKS, ComplianceReport

PAPERS = ("A4", "Letter")
_COLOURS = {PASSED: "#2e7d32", FAILED: "#c62828"}
_VERDICT_COLOURS = {"PASSED": "#2e7d32", "PASSED WITH EXCEPTIONS": "#ef6c00", "NOT PASSED": "#c62828"}
_NEUTRAL = "#757575"


def badge(status: Status) -> str:
    colour = _COLOURS.get(status, _NEUTRAL)
    return f'<span class="badge" style="background:{colour}">{html.escape(status.upper())}</span>'


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


def verdict_banner(verdict: Verdict) -> str:
    return (
        f'<div id="report-verdict" data-verdict="{html.escape(verdict)}" style="border:3px solid '
        f'{_VERDICT_COLOURS[verdict]};padding:8px 14px;border-radius:4px;margin:8px 0">'
        f'<span style="font-size:1.4em;font-weight:bold;color:{_VERDICT_COLOURS[verdict]}">Summary: {verdict}</span>'
        f"<br/>{html.escape(VERDICTS[verdict])}.</div>"
    )


def table(frame: pl.DataFrame, *, max_rows: int = 25, caption: str = "") -> str:
    shown = frame.head(max_rows)
    head = "".join(f"<th>{html.escape(str(name))}</th>" for name in shown.columns)
    rows = "".join("<tr>" + "".join(_td(value) for value in row) + "</tr>" for row in shown.iter_rows())
    more = ""
    if frame.height > max_rows:
        more = f"<p><em>{frame.height - max_rows:,} more rows in the evidence file.</em></p>"
    title = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<table class="report">{title}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{more}'


def key_values(pairs: dict[str, object], *, caption: str = "") -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th>{_td(v)}</tr>" for k, v in pairs.items())
    title = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<table class="report kv">{title}{rows}</table>'


def image(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"/>'


#: Values up to this long never wrap; longer ones (identities, refs, hashes) wrap anywhere to fit the page.
_SHORT_VALUE = 10
#: Where a long value may break first: after a separator of identities and references (else anywhere).
_BREAK_AFTER = re.compile(r"([_/:.,-])(?=[A-Za-z])")
#: An instant as the report spells it (``iso``), or with more digits: never broken across lines.
_INSTANT = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))")
_STATUSES = (PASSED, FAILED, NO_EVIDENCE)


def _td(value: object) -> str:
    if isinstance(value, dt.datetime):
        return f'<td class="nowrap">{html.escape(iso(value))}</td>'
    if isinstance(value, str) and value not in _STATUSES and len(value) > _SHORT_VALUE:
        return f'<td class="long">{breakable(value)}</td>'
    return f'<td class="nowrap">{_cell(value)}</td>'


def breakable(text: str) -> str:
    """``text`` escaped, with break hints after the separators of identities and references, and its
    instants kept whole on one line."""
    parts = []
    for number, piece in enumerate(_INSTANT.split(text)):
        escaped = html.escape(piece)
        parts.append(f'<span class="nowrap">{escaped}</span>' if number % 2 else _BREAK_AFTER.sub(r"\1<wbr>", escaped))
    return "".join(parts)


def _cell(value: object) -> str:
    if value is None:
        return "&mdash;"
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, str) and value in _STATUSES:
        return badge(value)
    return html.escape(str(value))


def page_style(report: ComplianceReport, paper: str = "A4") -> str:
    """The report's CSS, with the page rules of the PDF (``paper``: ``A4`` or ``Letter``)."""
    if paper not in PAPERS:
        raise ValueError(f"paper must be one of {', '.join(PAPERS)}, not {paper!r}")
    period = report.period.to_json()
    footer = f"{report.report_id or 'report'} · {period['startDate']} to {period['endDate']}"
    return f"""<style>
@page {{ size: {paper}; margin: 18mm 12mm 16mm 12mm;
  @top-left {{ content: {_css_string(report.title)}; font: 8pt sans-serif; color: #555; }}
  @bottom-left {{ content: {_css_string(footer)}; font: 8pt sans-serif; color: #555; }}
  @bottom-right {{ content: "Page " counter(page) " of " counter(pages); font: 8pt sans-serif; color: #555; }} }}
.jp-RenderedHTMLCommon table.report {{ border-collapse: collapse; margin: 6px 0 14px; font-size: 8.5pt; width: 100%;
                                      table-layout: auto; }}
.jp-RenderedHTMLCommon table.report.kv {{ width: auto; max-width: 100%; }}
.jp-RenderedHTMLCommon table.report th, .jp-RenderedHTMLCommon table.report td {{ border: 1px solid #ccc;
  padding: 2px 5px; text-align: left; vertical-align: top; white-space: normal; overflow-wrap: break-word; }}
.jp-RenderedHTMLCommon table.report td.nowrap {{ white-space: nowrap; }}
.jp-RenderedHTMLCommon table.report span.nowrap {{ white-space: nowrap; }}
.jp-RenderedHTMLCommon table.report td.long {{ overflow-wrap: anywhere; min-width: 4em; }}
.jp-RenderedHTMLCommon table.report thead th {{ background: #eceff1; }}
.jp-RenderedHTMLCommon table.report caption {{ text-align: left; font-weight: bold; padding: 4px 0; }}
.badge {{ display: inline-block; color: #fff; padding: 1px 8px; border-radius: 3px; font-weight: bold;
          white-space: nowrap; font-size: 0.8rem; line-height: 1.5; vertical-align: middle; }}
.status-heading {{ display: flex; align-items: baseline; justify-content: space-between; gap: 12px; }}
.status-heading > .text {{ flex: 1 1 auto; min-width: 0; }}
.status-heading > .badge {{ flex: none; }}
p.would-change {{ font-size: 0.9em; color: #333; }}
pre.signed-note, pre.query {{ font-family: monospace; background: #f5f5f5; border: 1px solid #ddd; padding: 6px 8px;
                  white-space: pre-wrap; word-break: break-all; }}
img {{ max-width: 100%; height: auto; }}
.jp-OutputArea-output, .jp-RenderedHTMLCommon {{ overflow: visible !important; max-width: 100%; }}
table.sign-off td {{ height: 2.2em; min-width: 12em; }}
h1 {{ font-size: 18pt; }} h2 {{ font-size: 14pt; }} h3 {{ font-size: 11.5pt; }}
@media print {{ body, .jp-Notebook, .jp-Cell, .jp-Cell-outputWrapper, .jp-OutputArea, .jp-OutputArea-child,
                 .jp-OutputArea-output {{ padding: 0 !important; margin: 0 !important; }}
               .jp-Cell {{ break-inside: auto; }} tr, img, .status-heading {{ break-inside: avoid; }}
               h2, h3, .status-heading {{ break-after: avoid; }} }}
</style>"""


def _css_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    return f'"{escaped}"'


def title(report: ComplianceReport) -> str:
    period = report.period.to_json()
    return (
        f"<h1>{html.escape(report.title)}</h1>"
        f"<p>Period {html.escape(period['startDate'])} to {html.escape(period['endDate'])} (end excluded); "
        f"generated {html.escape(iso(report.generated_at))}"
        f"{'' if not report.report_id else '; report ' + html.escape(report.report_id)}. "
        "Every figure is computed from the qerberos audit ledger and its stores.</p>"
    )


def heading(text: str, status: Status | None = None, level: int = 2) -> str:
    """A heading with its badge beside the text (a wrapped heading never runs under it)."""
    if status is None:
        return f"<h{level}>{html.escape(text)}</h{level}>"
    return f'<h{level} class="status-heading"><span class="text">{html.escape(text)}</span>{badge(status)}</h{level}>'


def control_header(control: Control) -> str:
    """The control's heading and badge, and what would change its verdict (its checks: ``checks_frame``)."""
    change = html.escape(control.would_change)
    return heading(f"{control.framework.upper()} {control.id}: {control.title}", control.status, level=3) + (
        f'<p class="would-change"><strong>What would change this verdict:</strong> {change}</p>'
    )


def checks_frame(control: Control) -> pl.DataFrame:
    """One row per check: its result, the evidence it examined, what it found, its criterion and its query."""
    return pl.DataFrame(
        [(c.name, c.status, c.evidence, c.detail, c.criterion, c.query) for c in control.checks],
        schema=["check", "result", "evidence examined", "finding", "criterion", "query"],
        orient="row",
    )


def scope_and_method(report: ComplianceReport, origin: str) -> str:
    """What the report covers and leaves out, how each figure is computed, and what its verdicts mean."""
    period = report.period.to_json()
    modules = ", ".join(sorted(report.activity.by_layer)) or "none in the period"
    clocks = "".join(
        f"<li><strong>{html.escape(name)}</strong>: {html.escape(text)}</li>" for name, text in CLOCKS.items()
    )
    verdicts = "".join(
        f"<li><strong>{html.escape(name)}</strong>: {html.escape(text)}.</li>" for name, text in VERDICTS.items()
    )
    return (
        heading("Scope and method")
        + "<p><strong>Scope.</strong> "
        + html.escape(
            f"{report.organization or 'The organisation'}'s audit trail in the qerberos ledger {origin}: the events "
            f"of every module that reports to it ({modules}) that occurred from {period['startDate']} (included) to "
            f"{period['endDate']} (excluded), the alerts, incidents and risk assessments about that activity, the "
            "personal details the ledger still holds, and the detector registry. Out of scope: whatever the modules "
            "did not report to the ledger, and controls that rest on evidence outside it (physical access, "
            "encryption in transit, host security, breach notifications): those are marked "
            f"\u201c{OUTSIDE_THE_LEDGER}\u201d with where their evidence lives."
        )
        + "</p><p><strong>Method.</strong> "
        + html.escape(
            "The whole ledger is first re-derived (encodings, hash chain, Merkle tree) and checked against its "
            "Ed25519-signed checkpoint with the stand-alone verifier; a consistency proof links it to the previous "
            "report. Every figure is then computed by queries over the ledger and its stores, printed with each "
            "control. Each control is a set of checks; a check passes only on evidence rows, which are listed in "
            "the evidence index as CSV files with their SHA-256. The SHA-256 of evidence-manifest.json (every "
            "output's hash) is appended to the ledger as a compliance.report.generated event."
        )
        + f"</p><p><strong>Clocks.</strong></p><ul>{clocks}</ul>"
        + f"<p><strong>Verdicts.</strong> A control is PASSED only with evidence.</p><ul>{verdicts}</ul>"
    )


def sign_off(report: ComplianceReport) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(role)}</th><td></td><td></td><td></td></tr>"
        for role in ("Prepared by (control owner)", "Reviewed by (compliance)", "Approved by (management)")
    )
    return (
        heading("Sign-off")
        + "<p>"
        + html.escape(
            f"Report {report.report_id or '(unnamed)'} was generated automatically by qerberos at "
            f"{iso(report.generated_at)} with the verdict {report.verdict}. Signing below attests that the "
            "signatory reviewed the exceptions and the evidence index, and that the report's hash matches the "
            "ledger's compliance.report.generated event."
        )
        + '</p><table class="report sign-off"><thead><tr><th>role</th><th>name</th><th>signature</th><th>date</th>'
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )
