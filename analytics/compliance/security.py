"""Security over the period, from the ``alerts`` table of TEAM.md (and ``risk_scores`` / ``detector_scores``
when present): alerts by severity, technique and status, time to resolve, incidents and their 72-hour clock,
risk level changes and the riskiest identities.

Two clocks, and the report names the one each count uses. Alerts, incidents and risk changes belong to the
period of the activity they are about (the **activity clock**): an alert to its first detection window, a
risk score to the ledger time it was computed at, a ``risk.level.changed`` event to its assessment's time.
When they were raised (the **raise clock**: an alert's ``created_at``, the change's receipt by the ledger)
is shown beside it; it may fall in a later period, when that traffic was processed later.

A table that is not there is "no evidence", never zero alerts. The ledger's own ``security.alert.*`` audit
events are counted too, so an alert that was never written to the ledger shows up as a mismatch. The tables are
read through their stores (``models.alerts.AlertStore``, ``models.risk_store.RiskStore``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any, Protocol

import polars as pl

from analytics.compliance.period import Period

SEVERITIES = ("critical", "high", "medium", "low")
STATUSES = ("active", "resolved", "dismissed")
ALERT_CREATED_TYPE = "security.alert.created"
_SEVERITY_WEIGHT = {"critical": 4.0, "high": 3.0, "medium": 2.0, "low": 1.0}
_RISKIEST = 20
_ALERT_SCHEMA: dict[str, pl.DataType] = {  # the columns of the alerts contract (TEAM.md) the section reads
    "id": pl.String(),
    "squid_id": pl.String(),
    "pattern": pl.String(),
    "technique": pl.String(),
    "severity": pl.String(),
    "status": pl.String(),
    "score": pl.Float64(),
    "created_at_ms": pl.Int64(),
    "updated_at_ms": pl.Int64(),
    "reason": pl.String(),
    "window_ms": pl.Int64(),
}
#: Incidents: the alerts of these severities (the report's definition).
INCIDENT_SEVERITIES = ("critical", "high")
#: GDPR Art. 33: a breach is notified within 72 hours of becoming aware of it (the alert's raise time).
NOTIFICATION_WINDOW = dt.timedelta(hours=72)
RISK_CHANGE_TYPE = "risk.level.changed"
ACTIVITY_CLOCK = "activity clock: the first detection window of each alert (when the activity happened)"
RAISE_CLOCK = "raise clock: when the alert was raised"
_SCORE_SCHEMA: dict[str, pl.DataType] = {"squid_id": pl.String(), "risk": pl.Float64()}


class AlertEvidence(Protocol):
    """What the section reads of detection's tables (``models.alerts.AlertStore``); None: no such table.

    ``about_activity_between``: the alerts about the period's activity, with the columns of ``_ALERT_SCHEMA``;
    ``highest_detector_scores``: ``squid_id`` and ``risk``, the highest score per identity, highest first."""

    def about_activity_between(self, start_ms: int, end_ms: int) -> pl.DataFrame | None: ...

    def highest_detector_scores(self, start_ms: int, end_ms: int, limit: int) -> pl.DataFrame | None: ...


class RiskEvidence(Protocol):
    """What the section reads of the risk history (``models.risk_store.RiskStore``); None: no such table.

    ``highest_scores``: ``squid_id`` and ``risk``, each identity's highest identity assessment, highest first."""

    def highest_scores(self, start_ms: int, end_ms: int, limit: int) -> pl.DataFrame | None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Security:
    alerts_available: bool
    alerts: pl.DataFrame  # alerts about the period's activity (contract columns; window, raised, updated)
    by_severity: dict[str, int]
    by_status: dict[str, int]
    by_technique: dict[str, int]
    resolve_hours: pl.DataFrame  # severity, resolved, median_hours, p90_hours
    median_resolve_hours: float | None
    riskiest: pl.DataFrame  # squid_id, risk, source
    risk_source: str | None
    ledger_alert_events: dict[str, int]  # security.alert.created / .updated in the ledger, in the period
    alerts_recorded: int  # the period's alerts whose creation the ledger records (any time)
    incidents: pl.DataFrame  # id, squid_id, severity, window, raised, status, closed, hours_open, within_72h
    risk_changes: pl.DataFrame  # occurred_at (activity), received_at (raised), identity, direction

    @property
    def raised_later(self) -> int:
        """Alerts about the period's activity raised after the period ended."""
        return self.alerts.filter(pl.col("raised_after_period")).height

    def to_json(self) -> dict[str, Any]:
        return {
            "alertsAvailable": self.alerts_available,
            "alerts": self.alerts.height if self.alerts_available else None,
            "alertsClock": ACTIVITY_CLOCK,
            "alertsRaisedAfterThePeriod": self.raised_later if self.alerts_available else None,
            "alertsRecordedInLedger": self.alerts_recorded,
            "incidents": self.incidents.height if self.alerts_available else None,
            "incidentsOpenPast72Hours": self.incidents.filter(~pl.col("within_72h")).height,
            "riskLevelChanges": self.risk_changes.height,
            "bySeverity": self.by_severity,
            "byStatus": self.by_status,
            "byTechnique": self.by_technique,
            "medianTimeToResolveHours": None
            if self.median_resolve_hours is None
            else round(self.median_resolve_hours, 3),
            "riskiestIdentities": self.riskiest.head(10).to_dicts(),
            "riskSource": self.risk_source,
            "ledgerAlertEvents": self.ledger_alert_events,
        }


class RecordedAlerts(Protocol):
    """Which alert refs the ledger records a creation of (``models.reader.LedgerReader.recorded_refs``)."""

    def recorded_refs(self, event_type: str, refs: Iterable[str]) -> set[str]: ...


def summarise_security(
    alert_store: AlertEvidence,
    risk_store: RiskEvidence,
    ledger: RecordedAlerts,
    events: pl.DataFrame,
    period: Period,
    generated_at: dt.datetime,
) -> Security:
    stored = alert_store.about_activity_between(period.start_ms, period.end_ms)
    available = stored is not None
    alerts = _timed(pl.DataFrame(schema=_ALERT_SCHEMA) if stored is None else _typed(stored, _ALERT_SCHEMA), period)
    resolved = alerts.filter(pl.col("status") == "resolved").with_columns(
        hours=(pl.col("updated_at") - pl.col("raised_at")).dt.total_milliseconds() / 3_600_000
    )
    resolve_hours = (
        resolved.group_by("severity")
        .agg(resolved=pl.len(), median_hours=pl.col("hours").median(), p90_hours=pl.col("hours").quantile(0.9))
        .sort("severity")
    )
    riskiest, source = _riskiest(alert_store, risk_store, alerts, period)
    alert_events = events.filter(pl.col("type").str.starts_with("security.alert."))
    refs = [f"alert:{alert_id}" for alert_id in alerts["id"].to_list()]
    return Security(
        alerts_available=available,
        alerts=alerts,
        by_severity=_ordered(alerts, "severity", SEVERITIES) if available else {},
        by_status=_ordered(alerts, "status", STATUSES) if available else {},
        by_technique=_ordered(alerts.with_columns(pl.col("technique").fill_null("none")), "technique", ())
        if available
        else {},
        resolve_hours=resolve_hours,
        median_resolve_hours=None if resolved.is_empty() else float(resolved["hours"].median()),  # type: ignore[arg-type]
        riskiest=riskiest,
        risk_source=source,
        ledger_alert_events={
            str(kind): int(n) for kind, n in alert_events.group_by("type").agg(n=pl.len()).sort("type").iter_rows()
        },
        alerts_recorded=len(ledger.recorded_refs(ALERT_CREATED_TYPE, refs)) if refs else 0,
        incidents=incidents(alerts, generated_at),
        risk_changes=risk_changes(events),
    )


def incidents(alerts: pl.DataFrame, generated_at: dt.datetime) -> pl.DataFrame:
    """The critical and high alerts, each with how long it stayed open after it was raised (still open: until
    ``generated_at``) and whether that is within ``NOTIFICATION_WINDOW``."""
    closed = pl.when(pl.col("status") != "active").then(pl.col("updated_at"))
    return (
        alerts.filter(pl.col("severity").is_in(INCIDENT_SEVERITIES))
        .with_columns(closed_at=closed)
        .with_columns(
            hours_open=(pl.col("closed_at").fill_null(pl.lit(generated_at)) - pl.col("raised_at")).dt.total_minutes()
            / 60
        )
        .with_columns(within_72h=pl.col("hours_open") <= NOTIFICATION_WINDOW.total_seconds() / 3600)
        .select(
            "id",
            "squid_id",
            "severity",
            "window",
            "raised_at",
            "status",
            "closed_at",
            "hours_open",
            "within_72h",
            "reason",
        )
        .sort("window", "id")
    )


def risk_changes(events: pl.DataFrame) -> pl.DataFrame:
    """The period's ``risk.level.changed`` events: the assessment's time (activity) and the receipt (raise)."""
    return (
        events.filter(pl.col("type") == RISK_CHANGE_TYPE)
        .select(
            "occurred_at",
            raised_at=pl.col("received_at"),
            identity=pl.col("ref").str.strip_prefix("identity:"),
            direction=pl.when(pl.col("verdict") == "WARN").then(pl.lit("rising")).otherwise(pl.lit("falling")),
            seq=pl.col("seq"),
        )
        .sort("occurred_at", "seq")
    )


def _timed(frame: pl.DataFrame, period: Period) -> pl.DataFrame:
    """``window`` (activity clock) and ``raised_at`` (raise clock) as instants, and whether it was raised late."""
    instant = pl.Datetime("ms", "UTC")
    return frame.with_columns(
        window=pl.col("window_ms").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"),
        raised_at=pl.col("created_at_ms").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"),
        updated_at=pl.col("updated_at_ms").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"),
        raised_after_period=pl.col("created_at_ms") >= period.end_ms,
    ).with_columns(pl.col("window", "raised_at", "updated_at").cast(instant))


def _ordered(frame: pl.DataFrame, column: str, order: tuple[str, ...]) -> dict[str, int]:
    counts = {str(k): int(n) for k, n in frame.group_by(column).agg(n=pl.len()).sort(column).iter_rows()}
    if not order:
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    return {key: counts.get(key, 0) for key in order} | {k: v for k, v in counts.items() if k not in order}


def _riskiest(
    alert_store: AlertEvidence, risk_store: RiskEvidence, alerts: pl.DataFrame, period: Period
) -> tuple[pl.DataFrame, str | None]:
    """Highest risk per identity: ``risk_scores`` (identity assessments), else ``detector_scores``, else
    severity-weighted alerts."""
    readers = (("risk_scores", risk_store.highest_scores), ("detector_scores", alert_store.highest_detector_scores))
    for table, read in readers:
        frame = read(period.start_ms, period.end_ms, _RISKIEST)
        if frame is not None and not frame.is_empty():
            return _typed(frame, _SCORE_SCHEMA), table
    if not alerts.is_empty():
        weighted = (
            alerts.with_columns(weight=pl.col("severity").replace_strict(_SEVERITY_WEIGHT, default=1.0))
            .group_by("squid_id")
            .agg(risk=(pl.col("weight") * pl.col("score").fill_null(1.0)).sum(), alerts=pl.len())
            .sort(["risk", "squid_id"], descending=[True, False])
            .head(_RISKIEST)
        )
        return weighted.with_columns(source=pl.lit("alerts")), "alerts"
    return pl.DataFrame(schema=_SCORE_SCHEMA), None


def _typed(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return frame.select(pl.col(name).cast(dtype) for name, dtype in schema.items())
