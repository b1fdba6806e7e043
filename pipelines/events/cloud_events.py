"""What the ledger's records publish: upstream events (``q.qerberos.*.v1``) wrapped as CloudEvents 1.0.

Every record is a ``q.qerberos.audit.logged.v1``; an alert's creation (``security.alert.created``, appended by
``pipelines.alert_service``) is also a ``q.qerberos.alert.created.v1`` and a risk level change
(``risk.level.changed``, appended by ``pipelines.risk``) a ``q.qerberos.risk.scored.v1``: those two carry their
upstream payload as the record's details (under qerberos's own source), so the published payload is the one
the ledger committed to. A record whose details were erased (GDPR Art. 17) publishes its audit event only.

Each CloudEvent is in the JSON structured mode (``application/cloudevents+json``) of the CloudEvents NATS
binding. Its ``id`` is the payload's ``eventId``, derived from the ledger record (never random), so an event
published again after a crash or a broker outage has the same id: consumers deduplicate by it (and so does
JetStream, within its duplicate window, through the ``Nats-Msg-Id`` header). The extension attribute
``sequence`` is the record's ledger sequence number, which orders the events of one source.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import json
import uuid
from collections.abc import Mapping
from functools import cache
from typing import Any

import msgspec

from models.records import LedgerRecord
from pipelines.alert_service import ALERT_CREATED, DETECTOR_SOURCE
from pipelines.risk.level_events import LEDGER_TYPE as RISK_LEVEL_CHANGED
from pipelines.risk.level_events import RISK_ACTOR
from pipelines.risk.level_events import SCHEMA_FILE as RISK_SCORED_SCHEMA_FILE

__all__ = [
    "ALERT_CREATED_EVENT",
    "AUDIT_LOGGED_EVENT",
    "CONTENT_TYPE",
    "EVENT_TYPES",
    "RISK_SCORED_EVENT",
    "CloudEvent",
    "audit_logged_payload",
    "cloud_events",
    "event_schema",
]

AUDIT_LOGGED_EVENT = "q.qerberos.audit.logged.v1"
ALERT_CREATED_EVENT = "q.qerberos.alert.created.v1"
RISK_SCORED_EVENT = "q.qerberos.risk.scored.v1"
EVENT_TYPES = (AUDIT_LOGGED_EVENT, ALERT_CREATED_EVENT, RISK_SCORED_EVENT)
CONTENT_TYPE = "application/cloudevents+json"
# Package data (importlib.resources), so an installed wheel finds them wherever it runs.
_SCHEMAS = importlib.resources.files("pipelines.events") / "schemas"
_SCHEMA_PATHS = {
    AUDIT_LOGGED_EVENT: _SCHEMAS / "audit-logged.event.json",
    ALERT_CREATED_EVENT: _SCHEMAS / "alert-created.event.json",
    RISK_SCORED_EVENT: importlib.resources.files("pipelines.risk") / RISK_SCORED_SCHEMA_FILE,
}
# (ledger type, the source only qerberos's own services append with) -> the event the record also publishes;
# the source is set by the server from the caller's authentication, so no caller can forge one of these
_DERIVED = {(ALERT_CREATED, DETECTOR_SOURCE): ALERT_CREATED_EVENT, (RISK_LEVEL_CHANGED, RISK_ACTOR): RISK_SCORED_EVENT}
_AUDIT_EVENT_NAMESPACE = uuid.UUID("8a0d6c3e-1f2b-4c5d-9e7f-a1b2c3d4e5f6")
_IPFS_CID_PREFIX = "Qm"  # the upstream schema takes CIDv0 only (``^Qm[base58]{44}$``)
_IPFS_CID_LENGTH = 46


class CloudEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A CloudEvents 1.0 event in its JSON form (``data`` is the upstream payload)."""

    specversion: str = "1.0"
    id: str
    source: str
    type: str
    subject: str
    time: str
    datacontenttype: str = "application/json"
    dataschema: str
    sequence: str
    data: Mapping[str, Any]


_encode = msgspec.json.Encoder().encode


def encode(event: CloudEvent) -> bytes:
    return _encode(event)


@cache
def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON schema of the payload of ``event_type`` (one of ``EVENT_TYPES``)."""
    loaded: dict[str, Any] = json.loads(_SCHEMA_PATHS[event_type].read_text(encoding="utf-8"))
    return loaded


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def audit_logged_payload(record: LedgerRecord) -> dict[str, Any]:
    """The ``q.qerberos.audit.logged.v1`` payload (upstream ``events/audit-logged.event.json``) of a record."""
    actor = {"squidId": record.actor.squid_id}
    if record.actor.sub_id is not None:
        actor["subId"] = record.actor.sub_id
    if record.actor.dao_id is not None:
        actor["daoId"] = record.actor.dao_id
    audit_event_id = str(record.id)
    payload: dict[str, Any] = {
        # derived, not the record's own id: a risk change's record has its payload's eventId as its id
        "eventId": str(uuid.uuid5(_AUDIT_EVENT_NAMESPACE, audit_event_id)),
        "timestamp": _iso(record.received_at),
        "auditEventId": audit_event_id,
        "type": record.type,
        "actor": actor,
        "layer": record.layer,
        "verdict": record.verdict,
    }
    cid = record.cid
    if cid is not None and cid.startswith(_IPFS_CID_PREFIX) and len(cid) == _IPFS_CID_LENGTH:
        payload["ipfsCid"] = cid
    return payload


def cloud_events(record: LedgerRecord, source: str) -> list[CloudEvent]:
    """The events ``record`` publishes, its audit event first; ``source`` is the CloudEvents source (a URI
    reference naming this log)."""
    payloads = [(AUDIT_LOGGED_EVENT, audit_logged_payload(record))]
    derived = _DERIVED.get((record.type, record.source))
    if derived is not None and record.details is not None:
        payloads.append((derived, dict(record.details)))
    return [
        CloudEvent(
            id=payload["eventId"],
            source=source,
            type=event_type,
            subject=payloads[0][1]["auditEventId"],
            time=payload["timestamp"],
            dataschema=event_schema(event_type)["$id"],
            sequence=str(record.seq),
            data=payload,
        )
        for event_type, payload in payloads
    ]
