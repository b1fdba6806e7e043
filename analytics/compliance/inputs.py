"""What the controls are evaluated on: one report's sections, its period and its generation time."""

from __future__ import annotations

import dataclasses
import datetime as dt

import polars as pl

from analytics.compliance.activity import Activity
from analytics.compliance.evidence import Check
from analytics.compliance.gdpr import Gdpr
from analytics.compliance.integrity import IntegrityResult
from analytics.compliance.operations import Operations
from analytics.compliance.period import Period
from analytics.compliance.retention import Retention
from analytics.compliance.security import Security

PERIOD_EVENTS = "ledger_entries WHERE occurred_at_ms IN [period start, period end)"


@dataclasses.dataclass(frozen=True, slots=True)
class Evidence:
    period: Period
    generated_at: dt.datetime
    events: pl.DataFrame
    integrity: IntegrityResult
    activity: Activity
    security: Security
    gdpr: Gdpr
    retention: Retention
    operations: Operations
    identities: pl.DataFrame | None  # local identities (name, squid_id, permissions, created_at, disabled)
    detector: Check  # the detector in service (MLflow registry): ``pipelines.report_build.detector_in_service``


def period_query(condition: str) -> str:
    """The query over the period's events with ``condition``, as the report prints it."""
    return f"{PERIOD_EVENTS} AND {condition}"


def matching(e: Evidence, pattern: str) -> pl.DataFrame:
    """The period's events whose ``layer.type`` matches ``pattern``."""
    return e.events.filter(pl.concat_str("layer", pl.lit("."), "type").str.contains(pattern))


EVENT_ROW = ("occurred_at", "received_at", "squid_id", "layer", "type", "ref", "verdict", "seq")
