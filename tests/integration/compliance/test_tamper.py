"""A ledger changed behind qerberos's back (triggers dropped, a row edited) turns the report's integrity
section red, the report says so at the top, and the run's outcome is ``integrity_failed``."""

from __future__ import annotations

import json

from sqlalchemy import text

from models.database import is_sqlite
from models.ledger import Ledger
from models.records import SearchQuery
from pipelines.reports import EVENT_TYPE, ReportRequest, run_report
from qerberos.settings import Settings
from tests.integration.compliance.helpers import END, START, fill


def _tamper(ledger: Ledger, seq: int) -> None:
    with ledger.engine.begin() as connection:
        if is_sqlite(ledger.engine):
            for (name,) in connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).all():
                connection.execute(text(f"DROP TRIGGER {name}"))
        else:
            connection.execute(text("DROP FUNCTION qerberos_refuse_change() CASCADE"))
        flip = "CASE WHEN verdict = 'DENY' THEN 'ALLOW' ELSE 'DENY' END"
        connection.execute(text(f"UPDATE ledger_entries SET verdict = {flip} WHERE seq = {seq}"))


def test_tampered_ledger_turns_the_integrity_section_red(ledger: Ledger, backend_settings: Settings) -> None:
    fill(ledger, identities=6, days=3, seed=3)
    _tamper(ledger, 17)
    result = run_report(ReportRequest("soc2", START, END), backend_settings, ledger=ledger, tracking_uri="")
    data = json.loads((result.directory / "summary.json").read_text())
    html = (result.directory / "report.html").read_text()
    top = html.index("LEDGER INTEGRITY FAILED")
    recorded = ledger.search(SearchQuery(type=EVENT_TYPE)).records[0]
    assert ("integrity_failed", "failed", False, 17) == (
        result.outcome,
        data["integrity"]["status"],
        data["integrity"]["intact"],
        data["integrity"]["firstBadSeq"],
    )
    assert top < html.index("1. Integrity of the audit ledger")  # above every section
    assert 'data-status="failed"' in html
    assert ("ledger", "critical") == (data["violations"][0]["framework"], data["violations"][0]["severity"])
    cc71 = next(c for c in data["controls"] if c["id"] == "CC7.1")
    assert "failed" == cc71["status"]
    assert ("WARN", f"sha256:{result.sha256}") == (recorded.verdict, recorded.ref)
