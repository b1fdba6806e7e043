"""The security section reads the alerts contract of TEAM.md (and risk history): counts by severity and
status, time to resolve, the riskiest identities, and controls that fail on unhandled or unaudited alerts.
Without those tables it says "no evidence", never zero."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text

from models.ledger import Ledger
from models.records import Actor, NewEvent
from pipelines.report_build import build_report
from tests.integration.compliance.helpers import END, START, fill

HOUR = 3_600_000
T = int(START.timestamp() * 1000) + 24 * HOUR
ALERTS = [  # id, squid_id, severity, status, created, updated, reason
    ("a1", "did:squid:mallory", "critical", "active", T, T, None),  # active for 6 days at the end: unhandled
    ("a2", "did:squid:mallory", "high", "resolved", T, T + 4 * HOUR, "password reset"),
    ("a3", "did:squid:eve", "medium", "resolved", T, T + 2 * HOUR, "false positive"),
    ("a4", "did:squid:eve", "low", "dismissed", T, T + HOUR, None),  # closed without a reason
]


def _with_alerts(ledger: Ledger) -> None:
    with ledger.engine.begin() as connection:
        connection.execute(text(
            "CREATE TABLE alerts (id TEXT PRIMARY KEY, squid_id TEXT, pattern TEXT, technique TEXT, severity TEXT, "
            "status TEXT, score REAL, description TEXT, explanation TEXT, created_at_ms BIGINT, "
            "updated_at_ms BIGINT, reason TEXT, dedup_key TEXT)"
        ))  # fmt: skip
        for alert_id, who, severity, status, created, updated, reason in ALERTS:
            connection.execute(
                text(
                    "INSERT INTO alerts VALUES (:id, :who, 'brute_force', 'T1110', :severity, :status, 0.9, '', '{}', "
                    ":created, :updated, :reason, :key)"
                ),
                {"id": alert_id, "who": who, "severity": severity, "status": status, "created": created,
                 "updated": updated, "reason": reason, "key": f"{who}:brute_force"},
            )  # fmt: skip
        connection.execute(text(
            "CREATE TABLE risk_scores (id INTEGER PRIMARY KEY, identity TEXT, score REAL, level TEXT, factors TEXT, "
            "operation TEXT, computed_at_ms BIGINT, recorded_at_ms BIGINT)"
        ))  # fmt: skip
        connection.execute(text(
            f"INSERT INTO risk_scores VALUES (1, 'did:squid:mallory', 0.93, 'critical', '[]', NULL, {T}, {T}), "
            f"(2, 'did:squid:eve', 0.4, 'medium', '[]', NULL, {T}, {T}), "
            f"(3, 'did:squid:eve', 0.99, 'critical', '[]', 'payment', {T}, {T})"
        ))  # fmt: skip
    occurred = START + dt.timedelta(days=1)
    ledger.append([
        NewEvent("security.alert.created", f"alert:{a[0]}", Actor(a[1]), "qerberos", "WARN", "local:detector",
                 {"severity": a[2]}, occurred_at=occurred)
        for a in ALERTS[:3]  # one alert never reached the ledger
    ])  # fmt: skip


def test_security_section_and_its_controls(ledger: Ledger) -> None:
    fill(ledger, identities=6, days=3, seed=11)
    bare = build_report(ledger, framework="soc2", start=START, end=END)
    _with_alerts(ledger)
    report = build_report(ledger, framework="soc2", start=START, end=END)
    security = report.security.to_json()
    statuses = {c.id: {k.name: k.status for k in c.checks} for c in report.controls}
    assert (False, None, "no evidence") == (
        bare.security.alerts_available,
        bare.security.to_json()["alerts"],
        next(c.status for c in bare.controls if c.id == "CC7.3"),
    )
    assert (4, {"critical": 1, "high": 1, "medium": 1, "low": 1}, {"active": 1, "resolved": 2, "dismissed": 1}) == (
        security["alerts"],
        security["bySeverity"],
        security["byStatus"],
    )
    assert (3.0, {"T1110": 4}) == (security["medianTimeToResolveHours"], security["byTechnique"])
    assert ("risk_scores", [("did:squid:mallory", 0.93), ("did:squid:eve", 0.4)]) == (
        security["riskSource"],
        [(r["squid_id"], r["risk"]) for r in security["riskiestIdentities"]],
    )
    assert ("passed", "failed", "failed") == (
        statuses["CC7.2"]["monitoring active"],
        statuses["CC7.2"]["alerts audited"],
        statuses["CC7.3"]["alerts handled"],
    )
