"""The controls of each framework, each made of real checks on the period's evidence, or said to rest on
evidence outside the ledger (never left out).

SOC 2 (Trust Services Criteria 2017): CC6.1-CC6.8 (logical and physical access), CC7.1-CC7.5 (system
operations), CC8.1 (change management), A1.2 (backups and recovery). ISO/IEC 27001:2022 Annex A: A.5.15-A.5.18
(access control, identity, authentication, access rights), A.5.24-A.5.28 (incident management), A.8.2, A.8.5,
A.8.13, A.8.15, A.8.16, A.8.17. GDPR: Art. 5(1)(e), 5(1)(f), 15, 17, 30, 32, 33. ``custom`` reports every control.
"""

from __future__ import annotations

from collections.abc import Callable

from analytics.compliance import checks_access as access
from analytics.compliance import checks_operations as ops
from analytics.compliance import checks_privacy as privacy
from analytics.compliance.evidence import FAILED, NO_EVIDENCE, Check, Control
from analytics.compliance.inputs import Evidence

FRAMEWORKS = ("gdpr", "soc2", "iso27001", "custom")


def evaluate(framework: str, evidence: Evidence) -> list[Control]:
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}; known: {', '.join(FRAMEWORKS)}")
    chosen = FRAMEWORKS[:3] if framework == "custom" else (framework,)
    return [
        Control(name, control_id, title, tuple(check(evidence) for check in checks))
        for name in chosen
        for control_id, title, checks in CATALOGUE[name]
    ]


_Checks = tuple[Callable[[Evidence], Check], ...]
_INTEGRITY: _Checks = (ops.ledger_intact, ops.checkpoint_signed, ops.append_only)
CATALOGUE: dict[str, tuple[tuple[str, str, _Checks], ...]] = {
    "gdpr": (
        ("Art. 5(1)(e)", "Storage limitation (retention, at generation time)", (privacy.retention_respected,)),
        ("Art. 5(1)(f)", "Integrity and confidentiality of processing",
         (*_INTEGRITY, access.access_decisions_logged)),
        ("Art. 15", "Right of access by the data subject", (privacy.subject_access_answered,)),
        ("Art. 17", "Right to erasure carried out", (privacy.erasures_effective,)),
        ("Art. 30", "Records of processing activities",
         (privacy.records_of_processing, privacy.personal_access_logged)),
        ("Art. 32", "Security of processing",
         (access.events_attributed, access.denials_enforced, ops.monitoring_active, ops.alerts_handled)),
        ("Art. 33", "Notification of a personal data breach (72 hours)",
         (privacy.breaches_assessed, privacy.breach_notified)),
    ),
    "soc2": (
        ("CC6.1", "Logical access: identified, authenticated, authorised",
         (access.events_attributed, access.access_decisions_logged, access.denials_enforced)),
        ("CC6.2", "Access granted, changed and revoked on record",
         (access.identities_registered, access.access_changes_logged)),
        ("CC6.3", "Access rights managed; privileged access restricted and recorded",
         (access.privileged_attributed, access.revocations_logged)),
        ("CC6.4", "Physical access restricted", (access.physical_access,)),
        ("CC6.5", "Data disposed of when no longer needed", (privacy.erasures_effective, privacy.retention_respected)),
        ("CC6.6", "Threats from outside the system boundary refused",
         (access.authentications_logged, access.denials_enforced)),
        ("CC6.7", "Transmission and disclosure of data restricted",
         (privacy.personal_access_logged, access.transmission_protected)),
        ("CC6.8", "Unauthorised or malicious software prevented or detected",
         (ops.detector_deployed, access.malware_prevented)),
        ("CC7.1", "Changes to the audit trail and configuration detected", (*_INTEGRITY, ops.configuration_tracked)),
        ("CC7.2", "System components monitored for anomalies",
         (ops.monitoring_active, ops.detector_deployed, ops.alerts_in_ledger)),
        ("CC7.3", "Security events evaluated and acted on", (ops.alerts_handled,)),
        ("CC7.4", "Incidents responded to", (ops.incidents_responded, ops.incident_plan)),
        ("CC7.5", "Recovery from incidents", (ops.restores_drilled, ops.incidents_responded)),
        ("CC8.1", "Changes authorised, recorded and approved", (ops.promotions_gated, ops.configuration_tracked)),
        ("A1.2", "Backups and recovery infrastructure", (ops.backups_taken, ops.restores_drilled)),
    ),
    "iso27001": (
        ("A.5.15", "Access control", (access.access_decisions_logged, access.denials_enforced)),
        ("A.5.16", "Identity management", (access.events_attributed, access.identities_registered)),
        ("A.5.17", "Authentication information", (access.authentications_logged,)),
        ("A.5.18", "Access rights", (access.access_changes_logged, access.revocations_logged)),
        ("A.5.24", "Incident management planning and preparation", (ops.incident_plan, ops.monitoring_active)),
        ("A.5.25", "Assessment and decision on information security events", (ops.alerts_handled,)),
        ("A.5.26", "Response to information security incidents", (ops.incidents_responded,)),
        ("A.5.27", "Learning from information security incidents", (ops.incidents_learned,)),
        ("A.5.28", "Collection of evidence", (ops.evidence_preserved,)),
        ("A.8.2", "Privileged access rights", (access.privileged_attributed,)),
        ("A.8.5", "Secure authentication", (access.authentications_logged, access.denials_enforced)),
        ("A.8.13", "Information backup", (ops.backups_taken, ops.restores_drilled)),
        ("A.8.15", "Logging: events recorded, protected and analysed",
         (access.events_attributed, ops.clocks_synchronised, *_INTEGRITY)),
        ("A.8.16", "Monitoring activities for anomalous behaviour",
         (access.access_decisions_logged, ops.monitoring_active, ops.detector_deployed, ops.alerts_in_ledger,
          ops.alerts_handled)),
        ("A.8.17", "Clock synchronisation (event against receipt time)", (ops.clocks_synchronised,)),
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
