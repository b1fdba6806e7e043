"""Each framework's notebook executed by papermill on a real kernel over a simulated ledger: its numbers
equal direct SQL queries, its outputs exist, and its hash is in the ledger."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pdfplumber
import pytest
import rfc8785
from sqlalchemy import text

from models.ledger import Ledger
from models.records import SearchQuery
from pipelines.reports import EVENT_TYPE, ReportError, ReportRequest, ReportResult, run_report
from qerberos.settings import Settings
from tests.integration.compliance.helpers import END, START

FRAMEWORKS = ("gdpr", "soc2", "iso27001", "custom")
CONTROLS = {
    "gdpr": ["Art. 5(1)(e)", "Art. 5(1)(f)", "Art. 15", "Art. 17", "Art. 30", "Art. 32", "Art. 33"],
    "soc2": [*(f"CC6.{n}" for n in range(1, 9)), *(f"CC7.{n}" for n in range(1, 6)), "CC8.1", "A1.2"],
    "iso27001": ["A.5.15", "A.5.16", "A.5.17", "A.5.18", "A.5.24", "A.5.25", "A.5.26", "A.5.27", "A.5.28",
                 "A.8.2", "A.8.5", "A.8.13", "A.8.15", "A.8.16", "A.8.17"],
}  # fmt: skip
PAPER = {"gdpr": "A4", "soc2": "A4", "iso27001": "A4", "custom": "Letter"}
ERASED = "did:squid:erased-for-the-test"


@pytest.fixture(scope="module")
def reports(simulated: tuple[Settings, Ledger]) -> dict[str, ReportResult]:
    """One report per framework, in order (each later one proves consistency from the one before)."""
    settings, ledger = simulated
    _erase_inside_period(ledger)
    results = {}
    for framework in FRAMEWORKS:
        request = ReportRequest(
            framework, START, END, "Acme", retention_days=3650 if framework == "gdpr" else None, paper=PAPER[framework]
        )
        results[framework] = run_report(request, settings, ledger=ledger, tracking_uri="")
        ledger.checkpoint(force=True)  # the service's checkpointer signs the report's event within seconds
    return results


def _erase_inside_period(ledger: Ledger) -> None:
    """An identity's events, then its erasure, both inside the period (``Ledger.erase`` stamps "now")."""
    from models.records import Actor, NewEvent

    occurred = START + dt.timedelta(days=2)
    details = {"ip": "10.0.0.1"}
    ledger.append(
        [NewEvent("access", f"file:{n}", Actor(ERASED), "qdrive", "ALLOW", "cli", details, occurred_at=occurred)
         for n in range(5)]
    )  # fmt: skip
    ledger.append([  # the erasure is recorded first: the database deletes details only after it
        NewEvent("gdpr.erasure", f"identity:{ERASED}", Actor(ERASED), "qerberos", "ALLOW", "cli",
                 {"erasedEvents": 5, "article": "GDPR Art. 17"}, occurred_at=occurred + dt.timedelta(hours=1))
    ])  # fmt: skip
    owned = "SELECT seq FROM ledger_entries WHERE actor_squid_id = :who AND type = 'access'"
    with ledger.engine.begin() as connection:
        erased = connection.execute(text(f"DELETE FROM event_details WHERE seq IN ({owned})"), {"who": ERASED})
    assert 5 == erased.rowcount
    ledger.checkpoint(force=True)  # as the service's checkpointer would within seconds: verification expects it


def _summary(result: ReportResult) -> dict[str, Any]:
    return json.loads((result.directory / "summary.json").read_text())


def _scalar_map(ledger: Ledger, sql: str, before: int) -> dict[str, int]:
    window = "occurred_at_ms >= :start AND occurred_at_ms < :end AND seq < :before"
    params = {"start": int(START.timestamp() * 1000), "end": int(END.timestamp() * 1000), "before": before}
    with ledger.engine.connect() as connection:
        return {str(k): int(v) for k, v in connection.execute(text(sql.format(window=window)), params).all()}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_report_numbers_equal_direct_queries(
    framework: str, reports: dict[str, ReportResult], simulated: tuple[Settings, Ledger]
) -> None:
    _, ledger = simulated
    result = reports[framework]
    data = _summary(result)
    before = result.manifest["ledgerEvent"]["seq"]  # the ledger as the report saw it

    def grouped(column: str) -> dict[str, int]:
        return _scalar_map(ledger, f"SELECT {column}, COUNT(*) FROM ledger_entries WHERE {{window}} GROUP BY 1", before)

    total = sum(grouped("layer").values())
    privileged = _scalar_map(
        ledger,
        "SELECT 'n', COUNT(*) FROM ledger_entries WHERE {window} AND (type LIKE '%admin%' OR type LIKE "
        "'permission_grant' OR type LIKE 'permission_revoke' OR type LIKE '%erasure%')",
        before,
    )["n"]
    expected = {
        "totalEvents": total,
        "byLayer": grouped("layer"),
        "byType": grouped("type"),
        "byVerdict": {"ALLOW": 0, "DENY": 0, "WARN": 0} | grouped("verdict"),
        "identities": len(grouped("actor_squid_id")),
        "privilegedActions": privileged,
    }
    actual = {key: data["activity"][key] for key in expected}
    assert expected == actual
    assert (framework, "passed", True) == (data["type"], data["integrity"]["status"], data["integrity"]["intact"])
    controls = [c["id"] for c in data["controls"]]
    assert (CONTROLS.get(framework) or [i for f in ("gdpr", "soc2", "iso27001") for i in CONTROLS[f]]) == controls
    assert all(c["status"] != "passed" or all(k["status"] == "passed" for k in c["checks"]) for c in data["controls"])
    assert all(c["wouldChange"] and all(k["query"] and k["criterion"] for k in c["checks"]) for c in data["controls"])
    statuses = {c["status"] for c in data["controls"]}
    assert data["summary"]["verdict"] == (
        "NOT PASSED" if "failed" in statuses else "PASSED WITH EXCEPTIONS" if "no evidence" in statuses else "PASSED"
    )


def test_gdpr_report_counts_erasures_and_personal_data_access(
    reports: dict[str, ReportResult], simulated: tuple[Settings, Ledger]
) -> None:
    _, ledger = simulated
    result = reports["gdpr"]
    before = result.manifest["ledgerEvent"]["seq"]
    personal = _scalar_map(
        ledger,
        "SELECT 'n', COUNT(*) FROM ledger_entries WHERE {window} AND ((layer = 'qdrive' AND type IN "
        "('access', 'download', 'share')) OR (layer = 'qmail' AND type = 'read') OR (layer = 'qwallet' AND "
        "type = 'balance_check') OR (layer = 'squid' AND type = 'identity_update'))",
        before,
    )["n"]
    gdpr = _summary(result)["gdpr"]
    assert (personal, 1, 5, 0) == (
        gdpr["personalDataAccesses"],
        gdpr["erasureRequests"],
        gdpr["erasedEvents"],
        gdpr["erasuresIncomplete"],
    )
    art17 = next(c for c in _summary(result)["controls"] if c["id"] == "Art. 17")
    assert "passed" == art17["status"]


def test_first_report_has_no_consistency_evidence_and_the_next_proves_append_only(
    reports: dict[str, ReportResult],
) -> None:
    first, second = _summary(reports["gdpr"])["integrity"], _summary(reports["soc2"])["integrity"]
    assert ("no evidence", "passed") == (first["consistency"]["status"], second["consistency"]["status"])
    assert (first["checkpoint"]["size"], second["checkpoint"]["size"]) == (
        second["consistency"]["fromSize"],
        second["consistency"]["toSize"],
    )


def test_outputs_exist_and_the_html_has_no_code(reports: dict[str, ReportResult]) -> None:
    directory = reports["soc2"].directory
    html = (directory / "report.html").read_text()
    pdf = (directory / "report.pdf").read_bytes()
    csv_head = (directory / "summary.csv").read_text().splitlines()[0]
    assert (True, False, True, "section,metric,value") == (
        "Ledger integrity VERIFIED" in html,
        "build_report(" in html,
        pdf.startswith(b"%PDF"),
        csv_head,
    )


def test_report_hash_is_in_the_ledger(reports: dict[str, ReportResult], simulated: tuple[Settings, Ledger]) -> None:
    """Recompute the hash from the files on disk, independently of the pipeline, and find it in the ledger."""
    _, ledger = simulated
    result = reports["iso27001"]
    manifest = json.loads((result.directory / "manifest.json").read_text())
    outputs = {name: hashlib.sha256((result.directory / name).read_bytes()).hexdigest() for name in manifest["outputs"]}
    content = {"reportId": result.report_id, "framework": "iso27001", "period": manifest["period"], "outputs": outputs}
    recomputed = hashlib.sha256(rfc8785.dumps(content)).hexdigest()
    events = ledger.search(SearchQuery(type=EVENT_TYPE, limit=50)).records
    recorded = [e for e in events if e.details is not None and e.details["reportId"] == result.report_id]
    assert [(f"sha256:{recomputed}", "qerberos", manifest["ledgerEvent"]["seq"])] == [
        (e.ref, e.layer, e.seq) for e in recorded
    ]
    evidence = {name for name in outputs if name.startswith("evidence/")}
    assert {"report.ipynb", "report.html", "report.pdf", "summary.json", "summary.csv"} == set(outputs) - evidence
    assert len(evidence) > 20
    assert hashlib.sha256((result.directory / "evidence-manifest.json").read_bytes()).hexdigest() == recomputed


def test_every_table_of_the_report_is_an_evidence_file_listed_in_the_index(reports: dict[str, ReportResult]) -> None:
    result = reports["soc2"]
    outputs = result.manifest["outputs"]
    html = re.sub(r"<wbr\s*/?>", "", (result.directory / "report.html").read_text())
    tables = html.count('<table class="report')
    files = sorted(name for name in outputs if name.startswith("evidence/"))
    listed = [name for name in files if name in html]  # the evidence index names each file with its hash
    assert (tables - 2, files) == (len(files), listed)  # all but the index itself and the sign-off block
    privileged = next(name for name in files if "privileged-and-administrative" in name)
    rows = (result.directory / privileged).read_text().splitlines()
    assert (outputs[privileged]["sha256"] in html, rows[0]) == (
        True,
        "occurred_at,squid_id,layer,type,ref,verdict,dao_id,seq",
    )


def test_failing_cell_keeps_the_notebook_and_says_so(simulated: tuple[Settings, Ledger], tmp_path: Path) -> None:
    settings, ledger = simulated
    size = ledger.size()
    broken = dataclasses.replace(settings, database_url=f"sqlite:///{tmp_path}/missing/dir/ledger.db")
    with pytest.raises(ReportError) as raised:
        run_report(ReportRequest("soc2", START, END), broken, ledger=ledger, tracking_uri="")
    report_id = raised.value.details["reportId"]
    manifest = json.loads((settings.home / "reports" / report_id / "manifest.json").read_text())
    notebook = settings.home / "reports" / report_id / "report.ipynb"
    assert ("error", True, size) == (manifest["outcome"], notebook.exists(), ledger.size())


PAGE_POINTS = {"A4": (595.28, 841.89), "Letter": (612.0, 792.0)}
RIGHT_MARGIN = 12 / 25.4 * 72  # the page style's 12 mm, in points
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T(?!\d{2}:\d{2}:\d{2}\.\d{3}Z)")  # an instant cut before its end


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_pdf_pages_title_and_nothing_past_the_right_margin(framework: str, reports: dict[str, ReportResult]) -> None:
    """Each framework's PDF, read back: its paper, its title, a header and "page N of M" footer on every page,
    and no character, table border or image past the right margin (a cut column would be)."""
    result = reports[framework]
    title = _summary(result)["title"]
    with pdfplumber.open(result.directory / "report.pdf") as pdf:
        pages = pdf.pages
        width, height = PAGE_POINTS[PAPER[framework]]
        assert all(abs(p.width - width) < 1.5 and abs(p.height - height) < 1.5 for p in pages)
        assert (title, True) == (pdf.metadata["Title"], len(pages) >= 3)
        texts = [page.extract_text() for page in pages]
        footers = [f"Page {n} of {len(pages)}" for n in range(1, len(pages) + 1)]
        found = [
            [line[-len(f) :] for line in t.splitlines() if line.endswith(f) and result.report_id in line]
            for t, f in zip(texts, footers, strict=True)
        ]
        assert [[f] for f in footers] == found
        assert all(t.startswith(title) for t in texts)
        beyond = [
            (number, kind)
            for number, page in enumerate(pages, 1)
            for kind, shapes in (("text", page.chars), ("border", page.rects + page.lines), ("image", page.images))
            if any(shape["x1"] > page.width - RIGHT_MARGIN + 1 for shape in shapes)
        ]
        assert [] == beyond
        assert [] == [(n, match.group()) for n, t in enumerate(texts, 1) for match in TIMESTAMP.finditer(t)]


def test_badges_never_overlap_heading_text(reports: dict[str, ReportResult]) -> None:
    """A status badge (a small filled box in a status colour) holds only its own word: no other character of
    the page, a wrapped heading's included, falls inside it."""
    colours = {(0.180, 0.490, 0.196), (0.776, 0.157, 0.157), (0.459, 0.459, 0.459)}  # passed, failed, no evidence
    overlaps = []
    with pdfplumber.open(reports["custom"].directory / "report.pdf") as pdf:
        for number, page in enumerate(pdf.pages, 1):
            for box in page.rects + page.curves:
                fill = tuple(round(float(c), 3) for c in box.get("non_stroking_color") or ())
                if fill not in colours or box["bottom"] - box["top"] > 20:
                    continue
                inside = "".join(
                    c["text"] for c in page.chars
                    if c["x0"] >= box["x0"] - 0.5 and c["x1"] <= box["x1"] + 0.5
                    and c["top"] >= box["top"] - 0.5 and c["bottom"] <= box["bottom"] + 0.5
                ).strip()  # fmt: skip
                touching = [
                    c["text"] for c in page.chars
                    if c["x1"] > box["x0"] and c["x0"] < box["x1"]
                    and c["bottom"] > box["top"] and c["top"] < box["bottom"]
                ]  # fmt: skip
                if inside not in ("PASSED", "FAILED", "NOEVIDENCE", "NO EVIDENCE") or len(touching) != len(inside):
                    overlaps.append((number, inside, "".join(touching)))
    assert [] == overlaps


def test_without_chromium_the_run_fails_before_the_work_unless_no_pdf(
    simulated: tuple[Settings, Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, ledger = simulated
    monkeypatch.setattr("pipelines.reports._CHROMIUM_NAMES", ("no-such-chromium",))
    size = ledger.size()
    with pytest.raises(ReportError, match="no Chromium installed") as raised:
        run_report(ReportRequest("soc2", START, END), settings, ledger=ledger, tracking_uri="")
    manifest = json.loads((settings.home / "reports" / raised.value.details["reportId"] / "manifest.json").read_text())
    assert ("error", size) == (manifest["outcome"], ledger.size())
    unprinted = run_report(ReportRequest("soc2", START, END, pdf=False), settings, ledger=ledger, tracking_uri="")
    assert ("success", False, "not produced: not requested (--no-pdf)") == (
        unprinted.outcome,
        "report.pdf" in unprinted.manifest["outputs"],
        unprinted.manifest["pdf"],
    )
