"""Security over the period, from the ``alerts`` table of TEAM.md (and ``risk_scores`` / ``detector_scores``
when present): alerts by severity, technique and status, time to resolve, the riskiest identities.

A table that is not there is "no evidence", never zero alerts. The ledger's own ``security.alert.*`` audit
events are counted too, so an alert that was never written to the ledger shows up as a mismatch.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import polars as pl
import sqlalchemy as sa

from analytics.compliance.period import Period, has_table, query

SEVERITIES = ("critical", "high", "medium", "low")
STATUSES = ("active", "resolved", "dismissed")
_SEVERITY_WEIGHT = {"critical": 4.0, "high": 3.0, "medium": 2.0, "low": 1.0}
_ALERT_COLUMNS = "id, squid_id, pattern, technique, severity, status, score, created_at_ms, updated_at_ms, reason"
_ALERT_SCHEMA: dict[str, pl.DataType] = {
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


def summarise_security(engine: sa.Engine, events: pl.DataFrame, period: Period) -> Security:
    available = has_table(engine, "alerts")
    alerts = _alerts(engine, period) if available else pl.DataFrame(schema=_ALERT_SCHEMA).pipe(_timed)
    resolved = alerts.filter(pl.col("status") == "resolved").with_columns(
        hours=(pl.col("updated_at") - pl.col("created_at")).dt.total_milliseconds() / 3_600_000
    )
    resolve_hours = (
        resolved.group_by("severity")
        .agg(resolved=pl.len(), median_hours=pl.col("hours").median(), p90_hours=pl.col("hours").quantile(0.9))
        .sort("severity")
    )
    riskiest, source = _riskiest(engine, alerts, period)
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


def _alerts(engine: sa.Engine, period: Period) -> pl.DataFrame:
    rows = query(
        engine,
        f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE created_at_ms >= :start AND created_at_ms < :end",
        start=period.start_ms,
        end=period.end_ms,
    )
    frame = pl.DataFrame([tuple(row) for row in rows], schema=_ALERT_SCHEMA, orient="row")
    return _timed(frame)


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


def _riskiest(engine: sa.Engine, alerts: pl.DataFrame, period: Period) -> tuple[pl.DataFrame, str | None]:
    """Highest risk per identity: ``risk_scores``, else ``detector_scores``, else severity-weighted alerts."""
    for table in ("risk_scores", "detector_scores"):
        frame = _scores(engine, table, period)
        if frame is not None and not frame.is_empty():
            return frame, table
    if not alerts.is_empty():
        weighted = (
            alerts.with_columns(weight=pl.col("severity").replace_strict(_SEVERITY_WEIGHT, default=1.0))
            .group_by("squid_id")
            .agg(risk=(pl.col("weight") * pl.col("score").fill_null(1.0)).sum(), alerts=pl.len())
            .sort(["risk", "squid_id"], descending=[True, False])
            .head(20)
        )
        return weighted.with_columns(source=pl.lit("alerts")), "alerts"
    return pl.DataFrame(schema={"squid_id": pl.String(), "risk": pl.Float64()}), None


def _scores(engine: sa.Engine, table: str, period: Period) -> pl.DataFrame | None:
    """Highest score per identity in the period: ``risk_scores`` (``identity``, ``score``, ``computed_at_ms``;
    identity assessments only) or ``detector_scores`` (``squid_id``, ``score``, ``window_start_ms``)."""
    if not has_table(engine, table):
        return None
    columns = {column["name"] for column in sa.inspect(engine).get_columns(table)}
    who = next((name for name in ("squid_id", "identity") if name in columns), None)
    score = next((name for name in ("score", "risk_score", "risk") if name in columns), None)
    if who is None or score is None:
        return None
    when = next((name for name in ("computed_at_ms", "window_start_ms", "created_at_ms") if name in columns), None)
    conditions = [f"{when} >= :start AND {when} < :end"] if when else []
    if "operation" in columns:
        conditions.append("operation IS NULL")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = query(
        engine,
        f"SELECT {who}, MAX({score}) AS risk FROM {table}{where} GROUP BY {who} ORDER BY risk DESC, {who} LIMIT 20",
        start=period.start_ms,
        end=period.end_ms,
    )
    schema = {"squid_id": pl.String(), "risk": pl.Float64()}
    return pl.DataFrame([tuple(row) for row in rows], schema=schema, orient="row")
