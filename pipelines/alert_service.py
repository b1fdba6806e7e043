"""``AlertService``: the alert store whose every creation, escalation and status change is also appended to the
ledger (the alerts contract of TEAM.md), as an event of layer ``qerberos``, type ``security.alert.created`` /
``security.alert.updated``, actor ``qerberos:detector`` (the analyst's own identity for a resolution or
dismissal), with an id derived from the alert and its update time, so a retried append is idempotent.

The alert row is written first (``models.alerts.AlertStore``), then the event: if the ledger append fails the
change is kept and the error raised (the caller logs it). A plain repeat of an active alert only updates its row.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from models.alerts import AlertCandidate, AlertChange, AlertStore, AlertView
from models.records import Actor, LedgerAppender, NewEvent
from qerberos.errors import LedgerError
from qerberos.instants import iso_epoch_ms

__all__ = [
    "ALERT_CREATED",
    "ALERT_UPDATED",
    "DETECTOR_ACTOR",
    "DETECTOR_SOURCE",
    "AlertService",
    "alert_created_payload",
]

ALERT_CREATED = "security.alert.created"
ALERT_UPDATED = "security.alert.updated"
DETECTOR_ACTOR = "qerberos:detector"
DETECTOR_SOURCE = "qerberos:detector"
COMPONENT_VERSION = "1.0.0"
_EVENT_NAMESPACE = uuid.UUID("0b8f4d0e-5a43-4d1c-9f77-3c1b7d2a9e01")


def alert_created_payload(alert: AlertView) -> dict[str, Any]:
    """The ``q.qerberos.alert.created.v1`` event payload (upstream ``events/alert-created.event.json``)."""
    tags = [alert.pattern] + ([alert.technique] if alert.technique else [])
    return {
        "eventId": str(uuid.uuid5(_EVENT_NAMESPACE, f"{alert.id}:created")),
        "timestamp": iso_epoch_ms(alert.created_at_ms),
        "alertId": alert.id,
        "type": "anomaly" if alert.pattern == "anomaly" else "policy_violation",
        "severity": alert.severity,
        "title": _title(alert)[:200],
        "description": alert.description[:500],
        "affectedIdentities": [alert.squid_id],
        "source": {"module": "qerberos", "component": "anomaly_detector", "version": COMPONENT_VERSION},
        "tags": tags,
        "priority": {"low": "low", "medium": "normal", "high": "high", "critical": "urgent"}[alert.severity],
    }


def _title(alert: AlertView) -> str:
    technique = f" ({alert.technique})" if alert.technique else ""
    return f"{alert.pattern.replace('_', ' ')}{technique} on {alert.squid_id}"


def _updated_payload(alert: AlertView, previous_status: str) -> dict[str, Any]:
    return {
        "alertId": alert.id,
        "status": alert.status,
        "previousStatus": previous_status,
        "severity": alert.severity,
        "score": round(alert.score, 6),
        "reason": alert.reason,
        "occurrences": alert.occurrences,
        "affectedIdentities": [alert.squid_id],
        "pattern": alert.pattern,
        "technique": alert.technique,
        "updatedAt": iso_epoch_ms(alert.updated_at_ms),
    }


class AlertService(AlertStore):
    """The alert store of ``engine`` whose changes are also appended to ``ledger`` (see the module doc)."""

    def __init__(self, engine: Engine, ledger: LedgerAppender) -> None:
        super().__init__(engine)
        self._ledger = ledger

    def raise_alert(self, candidate: AlertCandidate, *, now_ms: int | None = None) -> AlertChange:
        """``AlertStore.raise_alert``; a creation, or a rise in severity, is appended to the ledger."""
        change = super().raise_alert(candidate, now_ms=now_ms)
        if change.kind == "created":
            self._record(change.alert, ALERT_CREATED, alert_created_payload(change.alert))
        elif change.kind == "escalated":
            self._record(change.alert, ALERT_UPDATED, _updated_payload(change.alert, "active"))
        return change

    def set_status(
        self, alert_id: str, status: str, reason: str, *, actor: Actor | None = None, source: str = DETECTOR_SOURCE
    ) -> AlertView:
        """``AlertStore.set_status``, recorded in the ledger as ``security.alert.updated`` by ``actor``."""
        alert = super().set_status(alert_id, status, reason)
        self._record(alert, ALERT_UPDATED, _updated_payload(alert, "active"), actor=actor, source=source)
        return alert

    def _record(
        self,
        alert: AlertView,
        event_type: str,
        details: dict[str, Any],
        *,
        actor: Actor | None = None,
        source: str = DETECTOR_SOURCE,
    ) -> None:
        event = NewEvent(
            type=event_type,
            ref=f"alert:{alert.id}",
            actor=actor or Actor(DETECTOR_ACTOR),
            layer="qerberos",
            verdict="WARN" if alert.status == "active" else "ALLOW",
            source=source,
            details=details,
            id=uuid.uuid5(_EVENT_NAMESPACE, f"{alert.id}:{event_type}:{alert.status}:{alert.updated_at_ms}"),
            # the alert's own time, which is its events' time: a replay of last month must not make the ledger's
            # "now" (risk's clock) today through the alerts it raises
            occurred_at=dt.datetime.fromtimestamp(alert.updated_at_ms / 1000, dt.UTC),
        )
        try:
            self._ledger.append([event])
        except (LedgerError, SQLAlchemyError) as exc:
            raise LedgerError(f"alert {alert.id} stored but its audit event was not appended") from exc
