"""Checks of system operations: the audit trail's integrity, clock synchronisation, monitoring, alerts and
incidents (on the activity clock, measured at generation time), change management, backups and restores."""

from __future__ import annotations

import datetime as dt

import polars as pl

from analytics.compliance.evidence import FAILED, NO_EVIDENCE, PASSED, Check, outside_the_ledger
from analytics.compliance.inputs import Evidence, period_query
from analytics.compliance.operations import BACKUP_PATTERN, LATE_AFTER, MAX_CLOCK_SKEW, RESTORE_PATTERN
from analytics.compliance.security import ACTIVITY_CLOCK, INCIDENT_SEVERITIES

#: A critical or high alert still active this long after it was raised is left unhandled.
MAX_OPEN_SERIOUS_ALERT = dt.timedelta(days=7)
ALERTS_QUERY = "alerts WHERE first detection window (explanation.windows, else window_start_ms) IN [period)"


def ledger_intact(e: Evidence) -> Check:
    i = e.integrity
    name = "ledger intact"
    evidence = f"all {i.ledger_size:,} ledger records re-derived: encodings, hash chain, Merkle nodes, checkpoints"
    criterion = "every record re-derives to its stored hashes and every stored checkpoint matches"
    query = "ledger_entries, event_details, merkle_nodes, checkpoints: every row, in seq order"
    if i.ledger_size == 0:
        return Check(name, evidence, NO_EVIDENCE, "the ledger is empty", criterion, query)
    if not i.intact:
        detail = f"tampering at sequence number {i.first_bad_seq}: {i.problem}"
        return Check(name, evidence, FAILED, detail, criterion, query)
    return Check(name, evidence, PASSED, f"{i.checkpoints_checked} checkpoints matched the records", criterion, query)


def checkpoint_signed(e: Evidence) -> Check:
    i = e.integrity
    return Check(
        "signed checkpoint",
        "the log's Ed25519 checkpoint, checked by the stand-alone verifier",
        i.checkpoint_status,
        i.checkpoint_detail,
        "the newest checkpoint's signature verifies with the log's key",
        "checkpoints: the newest, verified with qerberos.verifier",
    )


def append_only(e: Evidence) -> Check:
    c = e.integrity.consistency
    return Check("append-only since the previous report", "RFC 9162 consistency proof between the two checkpoints",
                 c.status, c.detail, "a consistency proof from the previous report's checkpoint verifies",
                 "merkle_nodes: the consistency proof between the two checkpoints' sizes")  # fmt: skip


def clocks_synchronised(e: Evidence) -> Check:
    name = "clocks synchronised"
    evidence = "each event's time against the ledger's receipt time, per source (clock_skew evidence rows)"
    criterion = f"no event stamped more than {_words(MAX_CLOCK_SKEW)} ahead of the ledger's receipt"
    query = period_query("received_at_ms - occurred_at_ms, grouped by source")
    skew = e.operations.clock_skew
    if skew.is_empty():
        return Check(name, evidence, NO_EVIDENCE, "no events in the period", criterion, query, skew)
    ahead, late = int(skew["future_dated"].sum()), int(skew["late"].sum())
    detail = (
        f"{ahead:,} future-dated by more than {_words(MAX_CLOCK_SKEW)}; "
        f"{late:,} received over {_words(LATE_AFTER)} late"
    )
    return Check(name, evidence, FAILED if ahead else PASSED, detail, criterion, query, skew)


def monitoring_active(e: Evidence) -> Check:
    s = e.security
    name = "monitoring active"
    evidence = f"alerts about the period's activity and risk scores computed on it ({ACTIVITY_CLOCK})"
    criterion = "detection produced alerts or risk scores for the period's activity"
    query = f"{ALERTS_QUERY}; risk_scores WHERE computed_at_ms IN [period); detector_scores by window"
    if not s.alerts_available and s.risk_source is None:
        return Check(name, evidence, NO_EVIDENCE, "no alerts or risk tables in this deployment", criterion, query)
    if s.alerts.is_empty() and s.risk_source is None:
        detail = "monitoring produced no alert or score for the period"
        return Check(name, evidence, NO_EVIDENCE, detail, criterion, query)
    detail = (
        f"{s.alerts.height:,} alerts ({s.raised_later:,} raised after the period); risk from {s.risk_source or 'none'}"
    )
    return Check(name, evidence, PASSED, detail, criterion, query, s.riskiest)


def detector_deployed(e: Evidence) -> Check:
    return e.detector


def alerts_in_ledger(e: Evidence) -> Check:
    s = e.security
    name = "alerts audited"
    evidence = "each alert about the period against the ledger's security.alert.created events (any time)"
    criterion = "every alert's creation is recorded in the ledger"
    query = f"{ALERTS_QUERY}; ledger_entries WHERE type = 'security.alert.created' AND ref = 'alert:' || id"
    if not s.alerts_available or s.alerts.is_empty():
        return Check(name, evidence, NO_EVIDENCE, "no alerts about the period", criterion, query)
    detail = f"{s.alerts.height:,} alerts, {s.alerts_recorded:,} with their creation in the ledger"
    status = PASSED if s.alerts_recorded >= s.alerts.height else FAILED
    return Check(name, evidence, status, detail, criterion, query, _alert_rows(e))


def alerts_handled(e: Evidence) -> Check:
    s = e.security
    days = MAX_OPEN_SERIOUS_ALERT.days
    name = "alerts handled"
    evidence = f"at generation time: critical and high alerts active for more than {days} days; closures without reason"
    criterion = f"no critical or high alert active {days} days after it was raised, every closure with a reason"
    query = f"{ALERTS_QUERY} AND (status = 'active' AND severity IN (critical, high) OR closed without reason)"
    if not s.alerts_available or s.alerts.is_empty():
        return Check(name, evidence, NO_EVIDENCE, "no alerts about the period", criterion, query)
    stale = s.alerts.filter(
        (pl.col("status") == "active") & pl.col("severity").is_in(INCIDENT_SEVERITIES)
        & (pl.col("raised_at") < e.generated_at - MAX_OPEN_SERIOUS_ALERT)
    ).height  # fmt: skip
    unexplained = s.alerts.filter(
        pl.col("status").is_in(["resolved", "dismissed"]) & (pl.col("reason").is_null() | (pl.col("reason") == ""))
    ).height
    detail = f"{stale:,} serious alerts left active, {unexplained:,} closed without a reason"
    return Check(name, evidence, FAILED if stale or unexplained else PASSED, detail, criterion, query, _alert_rows(e))


def incidents_responded(e: Evidence) -> Check:
    s = e.security
    name = "incidents responded to"
    evidence = "incidents (critical and high alerts about the period): closed, with a reason, and how fast"
    criterion = "every incident about the period is closed with a reason (time open measured at generation time)"
    query = f"{ALERTS_QUERY} AND severity IN (critical, high)"
    if not s.alerts_available or s.incidents.is_empty():
        return Check(name, evidence, NO_EVIDENCE, "no incident about the period", criterion, query, s.incidents)
    open_ = s.incidents.filter(pl.col("status") == "active").height
    unexplained = s.incidents.filter((pl.col("status") != "active") & pl.col("reason").fill_null("").eq("")).height
    median = float(s.incidents["hours_open"].median() or 0.0)  # type: ignore[arg-type]
    detail = (
        f"{s.incidents.height:,} incidents, {open_:,} open, {unexplained:,} closed without a reason; "
        f"median {median:.1f} h open"
    )
    return Check(name, evidence, FAILED if open_ or unexplained else PASSED, detail, criterion, query, s.incidents)


def incidents_learned(e: Evidence) -> Check:
    s = e.security
    name = "lessons fed back"
    evidence = "dismissed alerts with a reason: each becomes false-positive labels for the next detector"
    criterion = "dismissals about the period carry a reason (the detector learns from them)"
    query = f"{ALERTS_QUERY} AND status = 'dismissed'"
    dismissed = s.alerts.filter(pl.col("status") == "dismissed")
    if not s.alerts_available or dismissed.is_empty():
        return Check(name, evidence, NO_EVIDENCE, "no dismissed alert about the period", criterion, query)
    bare = dismissed.filter(pl.col("reason").fill_null("").eq("")).height
    detail = f"{dismissed.height:,} dismissals, {bare:,} without a reason"
    return Check(
        name,
        evidence,
        FAILED if bare else PASSED,
        detail,
        criterion,
        query,
        _alert_rows(e).filter(pl.col("status") == "dismissed"),
    )


def incident_plan(_e: Evidence) -> Check:
    return outside_the_ledger("incident response plan", "roles, procedures and contacts for incidents",
                              "docs/RUNBOOK.md and the organisation's incident policy")  # fmt: skip


def evidence_preserved(e: Evidence) -> Check:
    """A.5.28: the evidence of incidents is the ledger itself; it holds if the ledger verifies and the alerts
    are in it."""
    intact, audited = ledger_intact(e), alerts_in_ledger(e)
    name, evidence = "evidence collected and preserved", "the ledger verified, and each alert recorded in it"
    status = (
        FAILED
        if FAILED in (intact.status, audited.status)
        else PASSED
        if intact.status == audited.status == PASSED
        else NO_EVIDENCE
    )
    return Check(name, evidence, status, f"{intact.detail}; {audited.detail}",
                 "the ledger verifies and every alert about the period is recorded in it",
                 f"{intact.query}; {audited.query}", audited.rows)  # fmt: skip


def promotions_gated(e: Evidence) -> Check:
    o = e.operations
    name = "detector changes approved"
    evidence = "champion promotions in the MLflow registry during the period: reason, gate or forced"
    criterion = "every promotion in the period carries its reason; forced ones name who and why"
    query = "MLflow registry: qerberos-detector versions with tag champion_since IN [period)"
    if not o.promotions_available:
        return Check(
            name, evidence, NO_EVIDENCE, "the MLflow registry was not available to the report", criterion, query
        )
    if o.promotions.is_empty():
        return Check(name, evidence, NO_EVIDENCE, "no detector promotion in the period", criterion, query, o.promotions)
    bare = o.promotions.filter(pl.col("reason").fill_null("").eq("")).height
    forced = o.promotions.filter(pl.col("forced").fill_null(False)).height
    detail = f"{o.promotions.height} promotions, {forced} forced, {bare} without a reason"
    return Check(name, evidence, FAILED if bare else PASSED, detail, criterion, query, o.promotions)


def configuration_tracked(e: Evidence) -> Check:
    o = e.operations
    name = "configuration changes detected"
    evidence = "SHA-256 of every configuration file, against the previous report's"
    criterion = "a previous report's fingerprints to compare with; changes are listed for approval"
    query = "config/*.toml: SHA-256 now and in the previous report's manifest"
    if o.previous_report is None:
        detail = f"{o.configuration.height} files fingerprinted; no previous report to compare with"
        return Check(name, evidence, NO_EVIDENCE, detail, criterion, query, o.configuration)
    detail = f"{o.configuration_changes} of {o.configuration.height} files changed since report {o.previous_report}"
    return Check(name, evidence, PASSED, detail, criterion, query, o.configuration)


def backups_taken(e: Evidence) -> Check:
    rows = e.operations.backups
    name, evidence = "backups taken", "ops.backup events in the ledger: each backup and its signed checkpoint"
    criterion = "at least one backup recorded in the ledger in the period"
    query = period_query(f"type ~ '{BACKUP_PATTERN}'")
    if rows.is_empty():
        detail = (
            "no backup recorded in the ledger in the period: a backup's evidence is its own signed manifest "
            "(qerberos backup), outside the ledger: attach it"
        )
        return Check(name, evidence, NO_EVIDENCE, detail, criterion, query, rows)
    return Check(name, evidence, PASSED, f"{rows.height} backups", criterion, query, rows)


def restores_drilled(e: Evidence) -> Check:
    rows = e.operations.restores
    name, evidence = "restore drilled", "ops.restore events: restores proven consistent with the published log"
    criterion = "at least one restore recorded in the period, none forced past a failed consistency check"
    query = period_query(f"type ~ '{RESTORE_PATTERN}'")
    if rows.is_empty():
        return Check(name, evidence, NO_EVIDENCE, "no restore or drill recorded in the period", criterion, query, rows)
    forced = rows.filter(pl.col("type") == "ops.restore.forced").height
    return Check(name, evidence, FAILED if forced else PASSED, f"{rows.height} restores, {forced} forced",
                 criterion, query, rows)  # fmt: skip


def _alert_rows(e: Evidence) -> pl.DataFrame:
    return e.security.alerts.select(
        "id", "squid_id", "severity", "status", "window", "raised_at", "updated_at", "reason"
    )


def _words(span: dt.timedelta) -> str:
    """``5 minutes``, ``1 day``: a duration as the report prints it."""
    seconds = int(span.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"
