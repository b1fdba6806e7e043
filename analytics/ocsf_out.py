"""Our trail as OCSF 1.7.0 events, so a SIEM (Splunk, Elastic, Amazon Security Lake) can take it: each ledger event
as an event of its taxonomy class (``ocsf_event``), each alert as a Detection Finding (2004) with its ATT&CK
technique (``detection_finding``).

Every event carries ``metadata.uid`` (the event id), ``metadata.sequence`` (its place in the ledger),
``metadata.log_name`` (the log's origin) and, in ``metadata.tags``, its leaf hash and details commitment
(``leaf_hash``, base64 of SHA-256(0x00 || canonical record), the value an inclusion proof starts from), so a
record found in a SIEM can be proven against a signed checkpoint. What OCSF has no attribute for (our type,
layer, ref, verdict, the submitter, the details) is kept under ``unmapped``. Details are left out once erased.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from analytics.taxonomy import Category, OcsfClass, Taxonomy

if TYPE_CHECKING:
    from models.alerts import AlertView
    from models.records import LedgerRecord

__all__ = ["OCSF_VERSION", "detection_finding", "ocsf_event"]

OCSF_VERSION = "1.7.0"
_PRODUCT = {"name": "qerberos", "vendor_name": "qerberos"}
_CATEGORY_NAMES = {
    0: "Uncategorized",
    1: "System Activity",
    2: "Findings",
    3: "Identity & Access Management",
    4: "Network Activity",
    5: "Discovery",
    6: "Application Activity",
}
_NETWORKED_CATEGORIES = frozenset({3, 6})  # Identity & Access Management, Application Activity
_WITHOUT_ACTOR = frozenset({0, 6001, 6004})  # Base Event and the web resource classes have no actor attribute
_STATUS_NAMES = {0: "Unknown", 1: "Success", 2: "Failure", 99: "Other"}
_SEVERITY_IDS = {"low": 2, "medium": 3, "high": 4, "critical": 5}
_FINDING_STATUSES = {"active": (1, "New"), "dismissed": (3, "Suppressed"), "resolved": (4, "Resolved")}


def _base(ocsf_class: OcsfClass, activity_id: int, time_ms: int, metadata: dict[str, Any]) -> dict[str, Any]:
    activity_name = ocsf_class.activity_name(activity_id).replace("_", " ").title()
    return {
        "class_uid": ocsf_class.uid,
        "class_name": ocsf_class.name,
        "category_uid": ocsf_class.category_uid,
        "category_name": _CATEGORY_NAMES.get(ocsf_class.category_uid, "Uncategorized"),
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": ocsf_class.uid * 100 + activity_id,
        "type_name": f"{ocsf_class.name}: {activity_name}",
        "time": time_ms,
        "metadata": {"version": OCSF_VERSION, "product": dict(_PRODUCT), **metadata},
    }


def ocsf_event(record: LedgerRecord, category: Category, taxonomy: Taxonomy, *, origin: str) -> dict[str, Any]:
    """The OCSF event of a ledger record of ``category`` (see the module doc)."""
    ocsf_class = taxonomy.classes[category.class_key]
    time_ms = _ms(record.occurred_at.timestamp())
    metadata = {
        "uid": str(record.id),
        "sequence": record.seq,
        "log_name": origin,
        "logged_time": _ms(record.received_at.timestamp()),
        "tags": [
            {"name": "leaf_hash", "value": base64.b64encode(record.leaf_hash).decode()},
            {"name": "details_commitment", "value": record.details_commitment},
        ],
    }
    event = _base(ocsf_class, category.activity_id, time_ms, metadata)
    details: Mapping[str, Any] = record.details or {}
    user = {"uid": record.actor.squid_id, "name": record.actor.squid_id}
    event.update(
        severity_id=1,
        severity="Informational",
        status_id=category.status_id,
        status=_STATUS_NAMES.get(category.status_id, "Other"),
        unmapped={
            "squid_id": record.actor.squid_id,
            "type": record.type,
            "layer": record.layer,
            "ref": record.ref,
            "verdict": record.verdict,
            "source": record.source,
            "sub_id": record.actor.sub_id,
            "dao_id": record.actor.dao_id,
            "details": record.details,
        },
    )
    endpoint = _endpoint(details)
    if ocsf_class.uid not in _WITHOUT_ACTOR:
        event["actor"] = {"user": user}
    if ocsf_class.category_uid in _NETWORKED_CATEGORIES:  # the classes with a source endpoint and a request
        if endpoint:
            event["src_endpoint"] = endpoint
        if isinstance(details.get("user_agent"), str):
            event["http_request"] = {"user_agent": details["user_agent"]}
    event.update(_class_attributes(ocsf_class.uid, record, user, endpoint, event.get("http_request", {})))
    return event


def _class_attributes(
    class_uid: int, record: LedgerRecord, user: dict[str, str], endpoint: dict[str, Any], event_request: Any
) -> dict[str, Any]:
    """What each class requires beyond the base event, from the record."""
    if class_uid in (3001, 3002, 3003):  # Account Change, Authentication, Authorize Session: the user concerned
        return {"user": user}
    if class_uid == 3005:  # User Access Management
        return {"user": user, "privileges": [record.type]}
    if class_uid == 3004:
        return {"entity": {"uid": record.ref, "name": record.ref}}
    if class_uid == 3006:
        return {"group": {"name": record.ref}}
    if class_uid == 1001:
        device = {"type_id": 0, "hostname": record.layer, **({"ip": endpoint["ip"]} if "ip" in endpoint else {})}
        return {"file": {"name": record.ref, "type_id": 0}, "device": device}
    if class_uid == 6001:
        return {"web_resources": [{"uid": record.ref, "name": record.ref}]}
    if class_uid == 6003:
        return {
            "api": {"operation": record.type, "service": {"name": record.layer}},
            "src_endpoint": endpoint or {"name": record.source},
        }
    if class_uid == 6004:
        return {"web_resources": [{"uid": record.ref, "name": record.ref}], "http_request": event_request}
    return {}


def _endpoint(details: Mapping[str, Any]) -> dict[str, Any]:
    endpoint: dict[str, Any] = {}
    if isinstance(details.get("ip"), str):
        endpoint["ip"] = details["ip"]
    if isinstance(details.get("country"), str):
        endpoint["location"] = {"country": details["country"]}
    return endpoint


def detection_finding(alert: AlertView, taxonomy: Taxonomy, *, origin: str) -> dict[str, Any]:
    """An alert as an OCSF Detection Finding: created, updated or closed by its status, its severity, the
    identity it concerns, the rule or detector that raised it (``finding_info.analytic``) and its ATT&CK
    technique (``finding_info.attacks``)."""
    finding_class = taxonomy.classes["detection_finding"]
    closed = alert.status in ("resolved", "dismissed")
    activity = "close" if closed else "create" if alert.created_at_ms == alert.updated_at_ms else "update"
    metadata = {"uid": alert.id, "log_name": origin}
    event = _base(finding_class, finding_class.activities[activity], alert.updated_at_ms, metadata)
    info: dict[str, Any] = {
        "uid": alert.id,
        "title": alert.description or alert.pattern,
        "created_time": alert.created_at_ms,
        "modified_time": alert.updated_at_ms,
        "analytic": {"name": alert.pattern, "type_id": 4 if alert.pattern == "anomaly" else 1},  # Learning, Rule
    }
    if alert.technique:
        info["attacks"] = [{"technique": {"uid": alert.technique}}]
    event.update(
        severity_id=_SEVERITY_IDS.get(alert.severity, 0),
        severity=alert.severity.title(),
        status_id=_FINDING_STATUSES.get(alert.status, (99, "Other"))[0],
        status=_FINDING_STATUSES.get(alert.status, (99, "Other"))[1],
        finding_info=info,
        resources=[{"uid": alert.squid_id, "type": "identity"}],
        confidence_score=round(alert.score * 100),
        unmapped={"pattern": alert.pattern, "occurrences": alert.occurrences, "reason": alert.reason},
    )
    return event


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
