"""Each framework's notebook executed by papermill on a real kernel over a simulated ledger: its numbers
equal direct SQL queries, its outputs exist, and its hash is in the ledger."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

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
    "gdpr": ["Art. 5(1)(f), 32", "Art. 17", "Art. 30", "Art. 5(1)(e)"],
    "soc2": ["CC6.1", "CC6.2", "CC6.3", "CC7.1", "CC7.2", "CC7.3"],
    "iso27001": ["A.8.15", "A.8.16"],
}
ERASED = "did:squid:erased-for-the-test"


@pytest.fixture(scope="module")
def reports(simulated: tuple[Settings, Ledger]) -> dict[str, ReportResult]:
    """One report per framework, in order (each later one proves consistency from the one before)."""
    settings, ledger = simulated
    _erase_inside_period(ledger)
    results = {}
    for framework in FRAMEWORKS:
        request = ReportRequest(framework, START, END, "Acme", retention_days=3650 if framework == "gdpr" else None)
        results[framework] = run_report(request, settings, ledger=ledger, tracking_uri="")
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
    assert {"report.ipynb", "report.html", "report.pdf", "summary.json", "summary.csv"} == set(outputs)


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
