"""Response shapes of the API (msgspec Structs), in the upstream contract's spelling (camelCase).

Additions to the contract are marked; ``docs/API.md`` lists every one. Request bodies of the audit
routes are ``models.wire_events.AuditEventRequest``, shared with ``qerberos ingest``.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any, Literal

import msgspec

from api.envelope import iso_timestamp
from models.records import AppendResult, LedgerRecord

Verdict = Literal["ALLOW", "DENY", "WARN"]
NOT_BLANK = r"[^\s\x1c-\x1f\x85]"
"""A JSON-schema pattern for text that ``str.strip()`` leaves non-empty (it also strips \x1c-\x1f and \x85)."""


class CamelSchema(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """Base of the API's shapes (these responses, the anomaly routes' bodies): camelCase names, optional fields
    left out when empty.

    Ids are ``uuid.UUID`` and hashes ``bytes`` in the event shapes: msgspec writes them as the canonical
    UUID string and standard base64 in C, the same text ``str()`` and ``b64()`` make, several times cheaper
    (a batch answer holds 1,000 of each, a search page 100).
    """


class IdentityRef(CamelSchema, frozen=True):
    squid_id: str
    sub_id: str | None = None
    dao_id: str | None = None


class AuditEventCreated(CamelSchema, frozen=True):
    """``data`` of ``POST /audit`` (and each item of a batch). ``seq`` and ``leafHash`` are additions."""

    id: uuid.UUID
    timestamp: str
    seq: int
    leaf_hash: bytes
    cid: str | None = None


class AuditEvent(CamelSchema, frozen=True):
    """A stored event: the contract's ``AuditEvent`` plus ``seq``, ``leafHash``, ``receivedAt``
    and ``detailsCommitment`` (``details`` is absent once erased; the commitment stays)."""

    id: uuid.UUID
    type: str
    ref: str
    actor: IdentityRef
    layer: str
    verdict: Verdict
    timestamp: str
    seq: int
    leaf_hash: bytes
    received_at: str
    details_commitment: str
    details: dict[str, Any] | None = None
    cid: str | None = None


class BatchCreated(CamelSchema, frozen=True):
    """``data`` of ``POST /audit/batch``: every event in order; ``created`` counts the new ones."""

    count: int
    created: int
    events: list[AuditEventCreated]


class AuditEventPage(CamelSchema, frozen=True):
    """``data`` of ``GET /audit``; ``nextCursor`` is an addition for deep paging without offsets."""

    events: list[AuditEvent]
    total_count: int
    limit: int
    offset: int
    has_more: bool
    next_cursor: str | None = None


class InclusionProof(CamelSchema, frozen=True):
    """The same JSON as ``qerberos proof inclusion``; hashes are base64."""

    leaf_index: int
    tree_size: int
    leaf_hash: str
    proof: list[str]
    checkpoint: str | None = None


class ConsistencyProof(CamelSchema, frozen=True):
    """The same JSON as ``qerberos proof consistency``; hashes are base64."""

    first: int
    second: int
    proof: list[str]


class LedgerKey(CamelSchema, frozen=True):
    """The signed-note verifier key of the log (and every key it has used, for rotated logs)."""

    origin: str
    verifier_key: str
    verifier_keys: list[str]


class DependencyStatus(msgspec.Struct, frozen=True, omit_defaults=True):
    """One dependency in ``GET /health``: ``latency`` in milliseconds, measured by a real request.

    ``mode`` is an addition: ``"local"`` when the dependency is embedded (``QERBEROS_AUTH_MODE=local``),
    in which case nothing was called and ``latency`` is 0; ``error`` says why a check failed.
    """

    status: Literal["up", "down"]
    latency: float
    mode: str | None = None
    error: str | None = None


class HealthResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    """``GET /health``: the runbook's shape (not the openapi envelope; see docs/API.md), and ``reasons``
    (an addition, absent when healthy) saying why it is degraded or unhealthy."""

    status: Literal["healthy", "degraded", "unhealthy"]
    timestamp: str
    version: str
    dependencies: dict[str, DependencyStatus]
    reasons: list[str] = msgspec.field(default_factory=list)


class LedgerHealth(CamelSchema, frozen=True):
    size: int
    head_seq: int | None = None
    head_leaf_hash: str | None = None
    checkpoint_age_seconds: float | None = None
    unsigned_entries_age_seconds: float = 0.0
    last_write_error: str | None = None


class DiskHealth(CamelSchema, frozen=True):
    path: str
    total_bytes: int
    free_bytes: int
    used_percent: float


class DetailedHealthResponse(CamelSchema, frozen=True):
    """``GET /health/detailed``: the runbook's shape extended with everything an operator looks at."""

    status: Literal["healthy", "degraded", "unhealthy"]
    timestamp: str
    version: str
    uptime_seconds: float
    dependencies: dict[str, DependencyStatus]
    ledger: LedgerHealth | None
    disk: DiskHealth
    pid: int
    reasons: list[str] = msgspec.field(default_factory=list)


class ProbeResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    """``/health/live`` and ``/health/ready``."""

    status: Literal["alive", "ready", "not ready"]
    timestamp: str
    reason: str | None = None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def created_view(result: AppendResult) -> AuditEventCreated:
    record = result.record
    return AuditEventCreated(
        id=record.id,
        timestamp=iso_timestamp(record.occurred_at),
        seq=record.seq,
        leaf_hash=record.leaf_hash,
        cid=record.cid,
    )


def event_view(record: LedgerRecord) -> AuditEvent:
    actor = record.actor
    return AuditEvent(
        id=record.id,
        type=record.type,
        ref=record.ref,
        actor=IdentityRef(actor.squid_id, actor.sub_id, actor.dao_id),
        layer=record.layer,
        verdict=record.verdict,
        timestamp=iso_timestamp(record.occurred_at),
        seq=record.seq,
        leaf_hash=record.leaf_hash,
        received_at=iso_timestamp(record.received_at),
        details_commitment=record.details_commitment,
        details=None if record.details is None else dict(record.details),
        cid=record.cid,
    )
