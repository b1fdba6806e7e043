"""Checks of personal data (GDPR): erasure, records of processing, access to personal data, storage limitation
at generation time, subjects' access requests, and breaches on their 72-hour clock."""

from __future__ import annotations

import polars as pl

from analytics.compliance.checks_operations import ALERTS_QUERY
from analytics.compliance.evidence import FAILED, NO_EVIDENCE, PASSED, Check, check_count, outside_the_ledger
from analytics.compliance.gdpr import PERSONAL_DATA_PATTERN, SUBJECT_EXPORT_TYPE
from analytics.compliance.inputs import Evidence, period_query
from analytics.compliance.period import iso
from analytics.compliance.security import NOTIFICATION_WINDOW


def erasures_effective(e: Evidence) -> Check:
    g = e.gdpr
    name = "erasures carried out"
    evidence = "each gdpr.erasure event: the identity's earlier events must hold no personal details (now)"
    criterion = "every erasure request of the period left none of the identity's earlier details, at generation time"
    query = period_query("type = 'gdpr.erasure'") + "; event_details of the identity's earlier events, counted now"
    if g.erasures.is_empty():
        return Check(name, evidence, NO_EVIDENCE, "no erasure request in the period", criterion, query, g.erasures)
    detail = f"{g.erasures.height} requests, {g.erased_events:,} events erased, {g.erasures_incomplete} incomplete"
    return Check(name, evidence, FAILED if g.erasures_incomplete else PASSED, detail, criterion, query, g.erasures)


def records_of_processing(e: Evidence) -> Check:
    return check_count(
        "records of processing",
        "processing activities per module with data subjects and categories",
        e.gdpr.processing,
        query=period_query("GROUP BY layer: types, data subjects, detail keys"),
        unit="processing activities",
        criterion="the period's processing is recorded per module",
    )


def personal_access_logged(e: Evidence) -> Check:
    return check_count("personal data access logged", "reads and disclosures of personal data, by identity",
                       e.gdpr.personal_access, query=period_query(f"layer.type ~ '{PERSONAL_DATA_PATTERN}'"),
                       unit="identities accessing personal data",
                       criterion="reads and disclosures of personal data recorded with their identity")  # fmt: skip


def retention_respected(e: Evidence) -> Check:
    r = e.retention
    name = "retention respected"
    evidence = (
        f"personal details still held at generation time ({iso(r.evaluated_at)}), by module, against its retention"
    )
    criterion = "no details held longer than their module's configured retention, at generation time"
    query = (
        "ledger_entries JOIN event_details GROUP BY layer: COUNT, MIN(occurred_at_ms), "
        "COUNT(occurred_at_ms < generation time - retention)"
    )
    if not r.policy.configured:
        return Check(name, evidence, NO_EVIDENCE, "no retention period configured for the report", criterion, query)
    if r.details_held == 0:
        return Check(name, evidence, NO_EVIDENCE, "no personal details held", criterion, query, r.by_module)
    detail = f"{r.past_retention:,} of {r.details_held:,} events hold details past their retention"
    return Check(name, evidence, FAILED if r.past_retention else PASSED, detail, criterion, query, r.by_module)


def subject_access_answered(e: Evidence) -> Check:
    return check_count("access requests answered", "exports of one data subject's events with inclusion proofs",
                       e.gdpr.subject_exports, query=period_query(f"type = '{SUBJECT_EXPORT_TYPE}'"),
                       unit="subject exports",
                       criterion="access requests of the period answered by `qerberos report subject`")  # fmt: skip


def breaches_assessed(e: Evidence) -> Check:
    s = e.security
    hours = int(NOTIFICATION_WINDOW.total_seconds() // 3600)
    name = f"incidents assessed within {hours} hours"
    evidence = f"incidents about the period: closed within {hours} hours of being raised (open ones: until now)"
    criterion = f"every incident about the period closed, with a reason, within {hours} hours of being raised"
    query = f"{ALERTS_QUERY} AND severity IN (critical, high): updated_at - created_at"
    if not s.alerts_available or s.incidents.is_empty():
        return Check(name, evidence, NO_EVIDENCE, "no incident about the period", criterion, query, s.incidents)
    late = s.incidents.filter(~pl.col("within_72h")).height
    detail = f"{s.incidents.height:,} incidents, {late:,} open longer than {hours} hours"
    return Check(name, evidence, FAILED if late else PASSED, detail, criterion, query, s.incidents)


def breach_notified(_e: Evidence) -> Check:
    return outside_the_ledger("supervisory authority notified", "notifications of personal data breaches (Art. 33(1))",
                              "the DPO's breach register and the authority's acknowledgements")  # fmt: skip
