"""The controls of each framework, each made of real checks on the period's evidence.

SOC 2 (Trust Services Criteria 2017): CC6.1, CC6.2, CC6.3 (logical access), CC7.1, CC7.2, CC7.3 (system
operations, monitoring). ISO/IEC 27001:2022 Annex A: A.8.15 (logging), A.8.16 (monitoring activities).
GDPR: Art. 5(1)(f)/32, Art. 17, Art. 30, Art. 5(1)(e). ``custom`` reports every control.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

import polars as pl

from analytics.compliance.activity import Activity
from analytics.compliance.evidence import FAILED, NO_EVIDENCE, PASSED, Check, Control, check_count
from analytics.compliance.gdpr import Gdpr
from analytics.compliance.integrity import IntegrityResult
from analytics.compliance.period import Period
from analytics.compliance.security import Security

FRAMEWORKS = ("gdpr", "soc2", "iso27001", "custom")
#: An event stamped this far after the ledger received it is future-dated (clock fault or forgery).
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)
#: A critical or high alert still active this long after it was raised is left unhandled.
MAX_OPEN_SERIOUS_ALERT = dt.timedelta(days=7)
ACCESS_DECISION_PATTERN = r"(auth|login|permission_check|session)"
ACCESS_CHANGE_PATTERN = r"(permission_grant|permission_revoke|role_|access_(grant|revoke))"


@dataclasses.dataclass(frozen=True, slots=True)
class Evidence:
    period: Period
    events: pl.DataFrame
    integrity: IntegrityResult
    activity: Activity
    security: Security
    gdpr: Gdpr
    detector: Check  # the detector in service (MLflow registry): ``pipelines.report_build.detector_in_service``


def evaluate(framework: str, evidence: Evidence) -> list[Control]:
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}; known: {', '.join(FRAMEWORKS)}")
    chosen = FRAMEWORKS[:3] if framework == "custom" else (framework,)
    return [
        Control(name, control_id, title, tuple(check(evidence) for check in checks))
        for name in chosen
        for control_id, title, checks in _CATALOGUE[name]
    ]


# -- checks ------------------------------------------------------------------------------------------


def ledger_intact(e: Evidence) -> Check:
    i = e.integrity
    evidence = f"all {i.ledger_size:,} ledger records re-derived: encodings, hash chain, Merkle nodes, checkpoints"
    if i.ledger_size == 0:
        return Check("ledger intact", evidence, NO_EVIDENCE, "the ledger is empty")
    if not i.intact:
        return Check("ledger intact", evidence, FAILED, f"tampering at sequence number {i.first_bad_seq}: {i.problem}")
    return Check("ledger intact", evidence, PASSED, f"{i.checkpoints_checked} checkpoints matched the records")


def checkpoint_signed(e: Evidence) -> Check:
    i = e.integrity
    return Check("signed checkpoint", "the log's Ed25519 checkpoint, checked by the stand-alone verifier",
                 i.checkpoint_status, i.checkpoint_detail)  # fmt: skip


def append_only(e: Evidence) -> Check:
    c = e.integrity.consistency
    return Check("append-only since the previous report", "RFC 9162 consistency proof between the two checkpoints",
                 c.status, c.detail)  # fmt: skip


def events_attributed(e: Evidence) -> Check:
    evidence = "every event of the period: actor, module and verdict present"
    if e.events.is_empty():
        return Check("events attributed", evidence, NO_EVIDENCE, "no events in the period")
    bad = e.events.filter(
        pl.col("squid_id").is_null() | (pl.col("squid_id").str.strip_chars() == "") | pl.col("layer").is_null()
        | ~pl.col("verdict").is_in(["ALLOW", "DENY", "WARN"])
    ).height  # fmt: skip
    if bad:
        return Check("events attributed", evidence, FAILED, f"{bad:,} of {e.events.height:,} events lack an actor")
    return Check("events attributed", evidence, PASSED, f"{e.events.height:,} events, all attributed")


def timestamps_consistent(e: Evidence) -> Check:
    evidence = "each event's time of occurrence against the ledger's time of receipt"
    if e.events.is_empty():
        return Check("timestamps consistent", evidence, NO_EVIDENCE, "no events in the period")
    ahead = e.events.filter(pl.col("occurred_at") > pl.col("received_at") + MAX_CLOCK_SKEW).height
    late = e.events.filter(pl.col("received_at") - pl.col("occurred_at") > dt.timedelta(days=1)).height
    detail = f"{ahead:,} future-dated by more than {MAX_CLOCK_SKEW}; {late:,} received more than a day late"
    return Check("timestamps consistent", evidence, FAILED if ahead else PASSED, detail)


def _matching(e: Evidence, pattern: str) -> pl.DataFrame:
    return e.events.filter(pl.concat_str("layer", pl.lit("."), "type").str.contains(pattern))


def access_decisions_logged(e: Evidence) -> Check:
    decisions = _matching(e, ACCESS_DECISION_PATTERN)
    return check_count("access decisions logged", "authentication and authorisation events (sQuid, Qonsent)",
                       decisions.height)  # fmt: skip


def denials_enforced(e: Evidence) -> Check:
    evidence = "DENY verdicts among authentication and authorisation decisions"
    decisions = _matching(e, ACCESS_DECISION_PATTERN)
    denied = decisions.filter(pl.col("verdict") == "DENY").height
    if decisions.is_empty() or denied == 0:
        return Check("refusals enforced", evidence, NO_EVIDENCE, "no refused access decision in the period")
    return Check("refusals enforced", evidence, PASSED, f"{denied:,} of {decisions.height:,} decisions refused")


def access_changes_logged(e: Evidence) -> Check:
    changes = _matching(e, ACCESS_CHANGE_PATTERN)
    return check_count("access changes logged", "permission grants and revocations", changes.height)


def privileged_attributed(e: Evidence) -> Check:
    evidence = "privileged and administrative actions: each attributed to an identity with a verdict"
    privileged = e.activity.privileged
    if privileged.is_empty():
        return Check("privileged actions attributed", evidence, NO_EVIDENCE, "no privileged action in the period")
    bad = privileged.filter(pl.col("squid_id").is_null() | (pl.col("squid_id") == "")).height
    denied = privileged.filter(pl.col("verdict") == "DENY").height
    detail = f"{privileged.height:,} actions, {denied:,} refused, {bad:,} unattributed"
    return Check("privileged actions attributed", evidence, FAILED if bad else PASSED, detail)


def monitoring_active(e: Evidence) -> Check:
    s = e.security
    evidence = "alerts raised and risk scores computed in the period (alerts, risk and detector tables)"
    if not s.alerts_available and s.risk_source is None:
        return Check("monitoring active", evidence, NO_EVIDENCE, "no alerts or risk tables in this deployment")
    raised = s.alerts.height
    if raised == 0 and s.risk_source is None:
        return Check("monitoring active", evidence, NO_EVIDENCE, "monitoring produced no alert or score in the period")
    return Check("monitoring active", evidence, PASSED, f"{raised:,} alerts; risk from {s.risk_source or 'none'}")


def detector_deployed(e: Evidence) -> Check:
    return e.detector


def alerts_in_ledger(e: Evidence) -> Check:
    s = e.security
    evidence = "each alert raised in the period against the ledger's security.alert.created audit events"
    if not s.alerts_available or s.alerts.is_empty():
        return Check("alerts audited", evidence, NO_EVIDENCE, "no alerts in the period")
    logged = s.ledger_alert_events.get("security.alert.created", 0)
    detail = f"{s.alerts.height:,} alerts, {logged:,} creation events in the ledger"
    return Check("alerts audited", evidence, PASSED if logged >= s.alerts.height else FAILED, detail)


def alerts_handled(e: Evidence) -> Check:
    s = e.security
    days = MAX_OPEN_SERIOUS_ALERT.days
    evidence = f"critical and high alerts active for more than {days} days; closures without reason"
    if not s.alerts_available or s.alerts.is_empty():
        return Check("alerts handled", evidence, NO_EVIDENCE, "no alerts in the period")
    stale = s.alerts.filter(
        (pl.col("status") == "active") & pl.col("severity").is_in(["critical", "high"])
        & (pl.col("created_at") < e.period.end - MAX_OPEN_SERIOUS_ALERT)
    ).height  # fmt: skip
    unexplained = s.alerts.filter(
        pl.col("status").is_in(["resolved", "dismissed"]) & (pl.col("reason").is_null() | (pl.col("reason") == ""))
    ).height
    detail = f"{stale:,} serious alerts left active, {unexplained:,} closed without a reason"
    return Check("alerts handled", evidence, FAILED if stale or unexplained else PASSED, detail)


def erasures_effective(e: Evidence) -> Check:
    g = e.gdpr
    evidence = "each gdpr.erasure event: the identity's earlier events must hold no personal details"
    if g.erasures.is_empty():
        return Check("erasures carried out", evidence, NO_EVIDENCE, "no erasure request in the period")
    detail = f"{g.erasures.height} requests, {g.erased_events:,} events erased, {g.erasures_incomplete} incomplete"
    return Check("erasures carried out", evidence, FAILED if g.erasures_incomplete else PASSED, detail)


def records_of_processing(e: Evidence) -> Check:
    return check_count("records of processing", "processing activities per module with data subjects and categories",
                       e.gdpr.processing.height, unit="processing activities")  # fmt: skip


def personal_access_logged(e: Evidence) -> Check:
    return check_count("personal data access logged", "reads and disclosures of personal data, by identity",
                       e.gdpr.personal_access_count)  # fmt: skip


def retention_respected(e: Evidence) -> Check:
    g = e.gdpr
    evidence = "age of the personal details still held against the retention period"
    if g.retention_days is None:
        return Check("retention respected", evidence, NO_EVIDENCE, "no retention period configured for the report")
    if g.oldest_details_days is None:
        return Check("retention respected", evidence, NO_EVIDENCE, "no personal details held")
    past = g.details_past_retention or 0
    detail = f"{past:,} events hold details older than {g.retention_days} days"
    return Check("retention respected", evidence, FAILED if past else PASSED, detail)


_Checks = tuple[Callable[[Evidence], Check], ...]
_CATALOGUE: dict[str, tuple[tuple[str, str, _Checks], ...]] = {
    "gdpr": (
        ("Art. 5(1)(f), 32", "Integrity and confidentiality of processing",
         (ledger_intact, checkpoint_signed, append_only, access_decisions_logged)),
        ("Art. 17", "Right to erasure carried out", (erasures_effective,)),
        ("Art. 30", "Records of processing activities", (records_of_processing, personal_access_logged)),
        ("Art. 5(1)(e)", "Storage limitation (retention)", (retention_respected,)),
    ),
    "soc2": (
        ("CC6.1", "Logical access: identified, authenticated, authorised",
         (events_attributed, access_decisions_logged, denials_enforced)),
        ("CC6.2", "Access granted, changed and revoked on record", (access_changes_logged,)),
        ("CC6.3", "Privileged access restricted and recorded", (privileged_attributed,)),
        ("CC7.1", "Changes to the audit trail detected", (ledger_intact, checkpoint_signed, append_only)),
        ("CC7.2", "System components monitored for anomalies",
         (monitoring_active, detector_deployed, alerts_in_ledger)),
        ("CC7.3", "Security events evaluated and acted on", (alerts_handled,)),
    ),
    "iso27001": (
        ("A.8.15", "Logging: events recorded, protected and analysed",
         (events_attributed, timestamps_consistent, ledger_intact, checkpoint_signed, append_only)),
        ("A.8.16", "Monitoring activities for anomalous behaviour",
         (access_decisions_logged, monitoring_active, detector_deployed, alerts_in_ledger, alerts_handled)),
    ),
}  # fmt: skip


def violations(controls: list[Control]) -> list[dict[str, str]]:
    return [
        {"framework": c.framework, "control": c.id, "check": k.name, "detail": k.detail, "severity": "high"}
        for c in controls
        for k in c.checks
        if k.status == FAILED
    ]


def recommendations(controls: list[Control]) -> list[str]:
    advice: list[str] = []
    for control in controls:
        for check in control.checks:
            if check.status == FAILED:
                advice.append(f"{control.id} {check.name}: investigate and remediate ({check.detail}).")
            elif check.status == NO_EVIDENCE:
                advice.append(f"{control.id} {check.name}: no evidence ({check.detail}); collect it before the audit.")
    return advice
