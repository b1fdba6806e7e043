"""Checks of logical access: who acted, authentication, authorisation decisions and refusals, access changes,
privileged actions and the registry of local identities."""

from __future__ import annotations

import polars as pl

from analytics.compliance.activity import PRIVILEGED_PATTERN
from analytics.compliance.evidence import FAILED, NO_EVIDENCE, PASSED, Check, check_count, outside_the_ledger
from analytics.compliance.inputs import EVENT_ROW, Evidence, matching, period_query

ACCESS_DECISION_PATTERN = r"(auth|login|permission_check|session)"
AUTHENTICATION_PATTERN = r"(auth|login|mfa|password|credential)"
ACCESS_CHANGE_PATTERN = r"(permission_grant|permission_revoke|role_|access_(grant|revoke))"
REVOCATION_PATTERN = r"(permission_revoke|access_revoke|role_(remove|revoke))"


def events_attributed(e: Evidence) -> Check:
    name, evidence = "events attributed", "every event of the period: actor, module and verdict present"
    criterion = "every event names an actor and a module and has a verdict ALLOW, DENY or WARN"
    query = period_query("(actor_squid_id blank OR layer IS NULL OR verdict NOT IN (ALLOW, DENY, WARN))")
    if e.events.is_empty():
        return Check(name, evidence, NO_EVIDENCE, "no events in the period", criterion, query)
    bad = e.events.filter(
        pl.col("squid_id").is_null() | (pl.col("squid_id").str.strip_chars() == "") | pl.col("layer").is_null()
        | ~pl.col("verdict").is_in(["ALLOW", "DENY", "WARN"])
    ).select(EVENT_ROW)  # fmt: skip
    if bad.height:
        detail = f"{bad.height:,} of {e.events.height:,} events lack an actor"
        return Check(name, evidence, FAILED, detail, criterion, query, bad)
    return Check(name, evidence, PASSED, f"{e.events.height:,} events, all attributed", criterion, query, bad)


def access_decisions_logged(e: Evidence) -> Check:
    return check_count("access decisions logged", "authentication and authorisation events (sQuid, Qonsent)",
                       matching(e, ACCESS_DECISION_PATTERN).select(EVENT_ROW),
                       query=period_query(f"layer.type ~ '{ACCESS_DECISION_PATTERN}'"),
                       criterion="at least one access decision recorded in the period")  # fmt: skip


def authentications_logged(e: Evidence) -> Check:
    name, evidence = "authentication recorded", "authentication events and their outcomes"
    criterion = "authentication events recorded in the period, refusals among them logged with their identity"
    query = period_query(f"layer.type ~ '{AUTHENTICATION_PATTERN}'")
    found = matching(e, AUTHENTICATION_PATTERN).select(EVENT_ROW)
    if found.is_empty():
        return Check(name, evidence, NO_EVIDENCE, "no authentication event in the period", criterion, query, found)
    refused = found.filter(pl.col("verdict") == "DENY").height
    detail = f"{found.height:,} authentication events, {refused:,} refused"
    return Check(name, evidence, PASSED, detail, criterion, query, found)


def denials_enforced(e: Evidence) -> Check:
    name, evidence = "refusals enforced", "DENY verdicts among authentication and authorisation decisions"
    criterion = "at least one access decision refused in the period (refusals are enforced and recorded)"
    query = period_query(f"layer.type ~ '{ACCESS_DECISION_PATTERN}' AND verdict = 'DENY'")
    decisions = matching(e, ACCESS_DECISION_PATTERN)
    denied = decisions.filter(pl.col("verdict") == "DENY").select(EVENT_ROW)
    if denied.is_empty():
        return Check(name, evidence, NO_EVIDENCE, "no refused access decision in the period", criterion, query, denied)
    detail = f"{denied.height:,} of {decisions.height:,} decisions refused"
    return Check(name, evidence, PASSED, detail, criterion, query, denied)


def access_changes_logged(e: Evidence) -> Check:
    return check_count("access changes logged", "permission grants and revocations",
                       matching(e, ACCESS_CHANGE_PATTERN).select(EVENT_ROW),
                       query=period_query(f"layer.type ~ '{ACCESS_CHANGE_PATTERN}'"),
                       criterion="grants and revocations of access recorded in the period")  # fmt: skip


def revocations_logged(e: Evidence) -> Check:
    return check_count("access revoked on record", "revocations of permissions and roles",
                       matching(e, REVOCATION_PATTERN).select(EVENT_ROW),
                       query=period_query(f"layer.type ~ '{REVOCATION_PATTERN}'"), unit="revocations",
                       criterion="at least one revocation recorded in the period")  # fmt: skip


def privileged_attributed(e: Evidence) -> Check:
    name = "privileged actions attributed"
    evidence = "privileged and administrative actions: each attributed to an identity with a verdict"
    criterion = "privileged actions occurred and every one names its identity"
    query = period_query(f"layer.type ~ '{PRIVILEGED_PATTERN}'")
    privileged = e.activity.privileged
    if privileged.is_empty():
        return Check(name, evidence, NO_EVIDENCE, "no privileged action in the period", criterion, query, privileged)
    bad = privileged.filter(pl.col("squid_id").is_null() | (pl.col("squid_id") == "")).height
    denied = privileged.filter(pl.col("verdict") == "DENY").height
    detail = f"{privileged.height:,} actions, {denied:,} refused, {bad:,} unattributed"
    return Check(name, evidence, FAILED if bad else PASSED, detail, criterion, query, privileged)


def identities_registered(e: Evidence) -> Check:
    name, evidence = "identities registered", "qerberos's own callers (table identities): permissions, disabled"
    criterion = "every local identity has a unique sQuid identity and an explicit permission list"
    query = "identities (name, squid_id, permissions, created_at_ms, disabled)"
    if e.identities is None or e.identities.is_empty():
        detail = "no local identities (remote authentication through sQuid: its registry is the evidence)"
        return Check(name, evidence, NO_EVIDENCE, detail, criterion, query, e.identities)
    bad = e.identities.filter(pl.col("permissions").is_in(["", "[]"])).height
    admins = e.identities.filter(pl.col("permissions").str.contains('"admin"')).height
    disabled = e.identities.filter(pl.col("disabled")).height
    detail = f"{e.identities.height} identities, {admins} with admin, {disabled} disabled, {bad} without permissions"
    return Check(name, evidence, FAILED if bad else PASSED, detail, criterion, query, e.identities)


def physical_access(_e: Evidence) -> Check:
    return outside_the_ledger("physical access restricted", "access to facilities and hardware",
                              "the hosting provider's SOC 2 report and the site's access logs")  # fmt: skip


def transmission_protected(_e: Evidence) -> Check:
    return outside_the_ledger("transmission protected", "encryption of data in transit (TLS) at the boundary",
                              "the ingress configuration (ops/nginx) and its TLS scan")  # fmt: skip


def malware_prevented(_e: Evidence) -> Check:
    return outside_the_ledger("malicious software prevented", "anti-malware and software integrity on hosts",
                              "endpoint protection reports and image signing of the deployment")  # fmt: skip
