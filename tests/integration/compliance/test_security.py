"""The security section reads the alerts contract of TEAM.md (and risk history): counts by severity and
status, time to resolve, incidents on their 72-hour clock, the riskiest identities, and controls that fail on
unhandled or unaudited alerts. Without those tables it says "no evidence", never zero.

Alerts belong to the period of the activity they are about (their first detection window), whatever the
time they were raised: January's traffic processed in December counts in January's report, not December's."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import text

from analytics.compliance import RetentionPolicy
from models.alerts import AlertCandidate, create_alert_tables
from models.ledger import Ledger
from models.records import Actor, NewEvent
from models.risk_store import create_risk_tables
from pipelines.alert_service import AlertService
from pipelines.report_build import build_report
from tests.integration.compliance.helpers import END, START, fill

HOUR = 3_600_000
T = int(START.timestamp() * 1000) + 24 * HOUR
ALERTS = [  # id, squid_id, severity, status, raised, updated, reason
    ("a1", "did:squid:mallory", "critical", "active", T, T, None),  # still active at generation: unhandled
    ("a2", "did:squid:mallory", "high", "resolved", T, T + 4 * HOUR, "password reset"),
    ("a3", "did:squid:eve", "medium", "resolved", T, T + 2 * HOUR, "false positive"),
    ("a4", "did:squid:eve", "low", "dismissed", T, T + HOUR, None),  # closed without a reason
]


def _with_alerts(ledger: Ledger) -> None:
    create_alert_tables(ledger.engine)
    create_risk_tables(ledger.engine)
    with ledger.engine.begin() as connection:
        for alert_id, who, severity, status, raised, updated, reason in ALERTS:
            connection.execute(
                text(
                    "INSERT INTO alerts (id, squid_id, pattern, technique, severity, status, score, description, "
                    "explanation, created_at_ms, updated_at_ms, reason, dedup_key, window_start_ms, occurrences) "
                    "VALUES (:id, :who, :pattern, 'T1110', :severity, :status, 0.9, '', :explanation, :raised, "
                    ":updated, :reason, :key, :window, 1)"
                ),
                {"id": alert_id, "who": who, "pattern": f"brute_force_{alert_id}", "severity": severity,
                 "status": status, "raised": raised, "updated": updated, "reason": reason,
                 "key": f"{who}:brute_force_{alert_id}", "window": raised - HOUR,
                 "explanation": json.dumps({"windows": [raised - HOUR]})},
            )  # fmt: skip
        connection.execute(text(
            "INSERT INTO risk_scores (id, identity, score, level, factors, operation, computed_at_ms, recorded_at_ms) "
            f"VALUES (1, 'did:squid:mallory', 0.93, 'critical', '[]', NULL, {T}, {T}), "
            f"(2, 'did:squid:eve', 0.4, 'medium', '[]', NULL, {T}, {T}), "
            f"(3, 'did:squid:eve', 0.99, 'critical', '[]', 'payment', {T}, {T})"
        ))  # fmt: skip
    ledger.append([
        NewEvent("security.alert.created", f"alert:{a[0]}", Actor(a[1]), "qerberos", "WARN", "local:detector",
                 {"severity": a[2]}, occurred_at=START + dt.timedelta(days=1))
        for a in ALERTS[:3]  # one alert never reached the ledger
    ])  # fmt: skip


def test_security_section_and_its_controls(ledger: Ledger) -> None:
    fill(ledger, identities=6, days=3, seed=11)
    bare = build_report(ledger, framework="soc2", start=START, end=END)
    _with_alerts(ledger)
    report = build_report(ledger, framework="custom", start=START, end=END)
    security = report.security.to_json()
    statuses = {(c.framework, c.id): {k.name: k.status for k in c.checks} for c in report.controls}
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
    assert (3.0, {"T1110": 4}, 3, 2, 1) == (
        security["medianTimeToResolveHours"],
        security["byTechnique"],
        security["alertsRecordedInLedger"],
        security["incidents"],
        security["incidentsOpenPast72Hours"],
    )
    assert ("risk_scores", [("did:squid:mallory", 0.93), ("did:squid:eve", 0.4)]) == (
        security["riskSource"],
        [(r["squid_id"], r["risk"]) for r in security["riskiestIdentities"]],
    )
    assert ("passed", "failed", "failed", "failed", "failed") == (
        statuses["soc2", "CC7.2"]["monitoring active"],
        statuses["soc2", "CC7.2"]["alerts audited"],
        statuses["soc2", "CC7.3"]["alerts handled"],
        statuses["soc2", "CC7.4"]["incidents responded to"],
        statuses["gdpr", "Art. 33"]["incidents assessed within 72 hours"],
    )


def test_alerts_count_in_the_period_of_their_detection_window_not_when_raised(ledger: Ledger) -> None:
    """Detected on January traffic, raised in December: January's report counts them (and says when they were
    raised), December's does not; an alert about the days before the period is not January's either."""
    fill(ledger, identities=6, days=3, seed=5)
    create_alert_tables(ledger.engine)
    service = AlertService(ledger.engine, ledger)
    december = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    raised_ms = int(december.timestamp() * 1000)
    windows = [T + n * HOUR for n in range(3)] + [int(START.timestamp() * 1000) - 48 * HOUR]
    for n, window in enumerate(windows):
        service.raise_alert(
            AlertCandidate(f"did:squid:late-{n}", "burst", "T1110", "medium", 0.8, "burst", {}, window),
            now_ms=raised_ms + n,
        )
    january = build_report(ledger, framework="soc2", start=START, end=END)
    later = build_report(ledger, framework="soc2", start=december, end=december + dt.timedelta(days=31))
    cc72 = {k.name: k for c in january.controls if c.id == "CC7.2" for k in c.checks}
    assert (3, 3, 3) == (
        january.security.alerts.height,
        january.security.raised_later,
        january.security.alerts_recorded,
    )
    assert [december + dt.timedelta(milliseconds=n) for n in range(3)] == january.security.alerts["raised_at"].to_list()
    assert ("passed", "passed", 0) == (
        cc72["monitoring active"].status,
        cc72["alerts audited"].status,
        later.security.alerts.height,
    )
    assert "activity clock" in january.security.to_json()["alertsClock"]


def test_retention_is_measured_at_generation_time_per_module(ledger: Ledger) -> None:
    """January's details still held when the report is generated, eleven months later, are past a 30-day
    retention, whatever the period's end; a module kept ten years is not."""
    fill(ledger, identities=6, days=3, seed=7)
    short = build_report(ledger, framework="gdpr", start=START, end=END, retention=RetentionPolicy(30))
    mixed = build_report(ledger, framework="gdpr", start=START, end=END,
                         retention=RetentionPolicy(30, {"qdrive": 3650}))  # fmt: skip
    none = build_report(ledger, framework="gdpr", start=START, end=END)
    held = {row["layer"]: row["details_held"] for row in short.retention.by_module.to_dicts()}

    def art5e(report: object) -> str:
        return next(c.status for c in report.controls if c.id == "Art. 5(1)(e)")  # type: ignore[attr-defined]

    assert (sum(held.values()), sum(held.values()) - held["qdrive"]) == (
        short.retention.past_retention,
        mixed.retention.past_retention,
    )
    assert ("failed", "failed", "no evidence") == (art5e(short), art5e(mixed), art5e(none))
    assert short.retention.evaluated_at == short.generated_at
    assert "NOT PASSED" == short.verdict
