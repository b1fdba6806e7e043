"""Security over the period, from the ``alerts`` table of TEAM.md (and ``risk_scores`` / ``detector_scores``
when present): alerts by severity, technique and status, time to resolve, the riskiest identities.

A table that is not there is "no evidence", never zero alerts. The ledger's own ``security.alert.*`` audit
events are counted too, so an alert that was never written to the ledger shows up as a mismatch. The tables are
read through their stores (``models.alerts.AlertStore``, ``models.risk_store.RiskStore``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import polars as pl

from analytics.compliance.period import Period

SEVERITIES = ("critical", "high", "medium", "low")
STATUSES = ("active", "resolved", "dismissed")
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
}
_SCORE_SCHEMA: dict[str, pl.DataType] = {"squid_id": pl.String(), "risk": pl.Float64()}


class AlertEvidence(Protocol):
    """What the section reads of detection's tables (``models.alerts.AlertStore``); None: no such table.

    ``created_between``: the alerts created in the period, with the columns of ``_ALERT_SCHEMA``;
    ``highest_detector_scores``: ``squid_id`` and ``risk``, the highest score per identity, highest first."""

    def created_between(self, start_ms: int, end_ms: int) -> pl.DataFrame | None: ...

    def highest_detector_scores(self, start_ms: int, end_ms: int, limit: int) -> pl.DataFrame | None: ...


class RiskEvidence(Protocol):
    """What the section reads of the risk history (``models.risk_store.RiskStore``); None: no such table.

    ``highest_scores``: ``squid_id`` and ``risk``, each identity's highest identity assessment, highest first."""

    def highest_scores(self, start_ms: int, end_ms: int, limit: int) -> pl.DataFrame | None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Security:
    alerts_available: bool
    alerts: pl.DataFrame  # alerts created in the period (contract columns, times as Datetime)
    by_severity: dict[str, int]
    by_status: dict[str, int]
    by_technique: dict[str, int]
    resolve_hours: pl.DataFrame  # severity, resolved, median_hours, p90_hours
    median_resolve_hours: float | None
    riskiest: pl.DataFrame  # squid_id, risk, source
    risk_source: str | None
    ledger_alert_events: dict[str, int]  # security.alert.created / .updated in the ledger, in the period

    def to_json(self) -> dict[str, Any]:
        return {
            "alertsAvailable": self.alerts_available,
            "alerts": self.alerts.height if self.alerts_available else None,
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


def summarise_security(
    alert_store: AlertEvidence, risk_store: RiskEvidence, events: pl.DataFrame, period: Period
) -> Security:
    stored = alert_store.created_between(period.start_ms, period.end_ms)
    available = stored is not None
    alerts = _timed(pl.DataFrame(schema=_ALERT_SCHEMA) if stored is None else _typed(stored, _ALERT_SCHEMA))
    resolved = alerts.filter(pl.col("status") == "resolved").with_columns(
        hours=(pl.col("updated_at") - pl.col("created_at")).dt.total_milliseconds() / 3_600_000
    )
    resolve_hours = (
        resolved.group_by("severity")
        .agg(resolved=pl.len(), median_hours=pl.col("hours").median(), p90_hours=pl.col("hours").quantile(0.9))
        .sort("severity")
    )
    riskiest, source = _riskiest(alert_store, risk_store, alerts, period)
    alert_events = events.filter(pl.col("type").str.starts_with("security.alert."))
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
    )


def _timed(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        created_at=pl.col("created_at_ms").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"),
        updated_at=pl.col("updated_at_ms").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"),
    )


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
