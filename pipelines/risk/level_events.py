"""The ``q.qerberos.risk.scored.v1`` event: its payload and the ledger event that records a level change.

The upstream catalogue has no schema for this event; qerberos defines it in ``risk-scored.event.json``
(package data beside this module), in the style of the upstream ``events/*.event.json``.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import json
import uuid
from typing import Any

from analytics.risk.scoring import RiskAssessment
from models.records import Actor, NewEvent
from models.risk_store import LevelChange
from qerberos.instants import iso_epoch_ms

EVENT_NAME = "q.qerberos.risk.scored.v1"
LEDGER_TYPE = "risk.level.changed"
RISK_ACTOR = "qerberos:risk"
SCHEMA_FILE = "risk-scored.event.json"
_NAMESPACE = uuid.UUID("5d7c9f0a-2b41-4e8e-9a3c-7f1e2d4b6a80")


def risk_scored_payload(assessment: RiskAssessment, change: LevelChange) -> dict[str, Any]:
    """The event's payload, its ``eventId`` derived from everything else in it: the same change recomputed
    appends nothing new, and two assessments that differ in anything (a ``previousScore``, a factor, within
    the same minute) are two events, never one id with two contents (a 409 from the ledger)."""
    payload: dict[str, Any] = {
        "timestamp": iso_epoch_ms(assessment.as_of_ms),
        "identity": assessment.identity,
        "score": assessment.score,
        "level": assessment.level,
        "previousLevel": change.previous_level,
        "previousScore": change.previous_score,
        "direction": "rising" if change.rising else "falling",
        "factors": [{"name": f.name, "weight": f.weight, "value": f.value} for f in assessment.factors],
        "expiresAt": iso_epoch_ms(assessment.expires_at_ms),
        "modelVersion": assessment.model_version,
        "source": {"module": "qerberos", "component": "risk_scorer", "version": assessment.model_version},
    }
    content = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return {"eventId": str(uuid.uuid5(_NAMESPACE, content)), **payload}


def level_changed_event(assessment: RiskAssessment, change: LevelChange) -> NewEvent:
    """The audit event of layer ``qerberos``, type ``risk.level.changed``, payload in its details."""
    payload = risk_scored_payload(assessment, change)
    return NewEvent(
        type=LEDGER_TYPE,
        ref=f"identity:{assessment.identity}",
        actor=Actor(RISK_ACTOR),
        layer="qerberos",
        verdict="WARN" if change.rising else "ALLOW",
        source=RISK_ACTOR,
        details=payload,
        id=uuid.UUID(payload["eventId"]),
        occurred_at=dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=assessment.as_of_ms),
    )


def schema() -> dict[str, Any]:
    text = importlib.resources.files("pipelines.risk").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded
