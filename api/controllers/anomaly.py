"""``/anomaly/detect``, ``/anomaly/alerts`` and ``/alerts``: score given data, list and handle alerts.

``/anomaly/detect`` decodes the events or feature rows and hands them to ``pipelines.on_demand_detection`` with
live detection (``detection``: a ``pipelines.live_detection.LiveDetection``, or on a replica with live
detection off a ``pipelines.on_demand_detection.ReplicaDetection`` that loads the champion itself). The alert
routes take ``alerts`` (a ``pipelines.alert_service.AlertService``), the engine's own store, or one over the
ledger alone where live detection is off (API replicas beside ``qerberos detect``): alerts live in the shared
database either way.
Both are built in the app's lifespan and injected (``api.services``). Each route names its permission in
``opt["permission"]`` (the app's permission guard enforces it).
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from typing import Annotated, Any, Literal

import anyio.to_thread
import msgspec
from litestar import Controller, Request, Response, get, patch, post
from litestar.params import FromPath, JSONBody, QueryParameter

from analytics.entities import entity_kind
from analytics.window_features import FEATURE_COLUMNS, FeatureRow
from api.controllers.audit import ocsf_response
from api.envelope import Envelope, iso_timestamp, ok
from api.schemas import NOT_BLANK, CamelSchema
from api.services import Alerts, Detection, provides
from models.alerts import AlertView, alert_cursor
from models.records import Actor
from models.wire_events import AuditEventRequest, convert_event
from pipelines.ocsf_export import alert_lines
from pipelines.on_demand_detection import Detection as DetectionService
from pipelines.on_demand_detection import Finding, Findings, detect_events, detect_feature_rows
from qerberos.errors import ValidationError
from qerberos.instants import iso_epoch_ms

__all__ = ["AlertsController", "AnomalyAlertsController", "AnomalyController"]

DETECT = "anomaly:detect"
READ = "alerts:read"
MANAGE = "alerts:manage"
MAX_ROWS = 10_000
_Severity = Literal["low", "medium", "high", "critical"]


class DetectData(CamelSchema, frozen=True):
    events: list[dict[str, Any]] | None = None
    features: list[dict[str, Any]] | None = None


class DetectRequest(CamelSchema, frozen=True):
    data: DetectData
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    threshold: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None


class Anomaly(CamelSchema, frozen=True):
    id: str
    type: str
    severity: _Severity
    confidence: float
    description: str
    timestamp: str
    features: dict[str, float] | None = None
    context: dict[str, Any] | None = None


class SeverityDistribution(CamelSchema, frozen=True):
    low: int = 0
    medium: int = 0
    high: int = 0
    critical: int = 0


class AnomalySummary(CamelSchema, frozen=True):
    total_anomalies: int
    severity_distribution: SeverityDistribution
    average_confidence: float
    high_severity_count: int
    type_distribution: dict[str, int]


class ModelInfo(CamelSchema, frozen=True):
    name: str
    version: str
    algorithm: str
    threshold: float


class DetectResult(CamelSchema, frozen=True):
    anomalies: list[Anomaly]
    summary: AnomalySummary
    timestamp: str
    analysis_id: str
    model_info: ModelInfo | None = None


class AlertSource(CamelSchema, frozen=True):
    module: str = "qerberos"
    component: str = "anomaly_detector"


class AffectedResource(CamelSchema, frozen=True):
    type: str
    id: str


class Alert(CamelSchema, frozen=True):
    """The contract's ``SecurityAlert``; qerberos's own fields are under ``metadata``."""

    id: str
    type: str
    severity: str
    status: str
    title: str
    description: str
    source: AlertSource
    created_at: str
    updated_at: str
    affected_resources: list[AffectedResource]
    tags: list[str]
    metadata: dict[str, Any]
    resolved_at: str | None = None


class AlertPage(CamelSchema, frozen=True):
    """``nextCursor`` (an addition) pages on: pass it as ``cursor``; absent on the last page."""

    alerts: list[Alert]
    total_count: int
    has_more: bool
    next_cursor: str | None = None


class AlertUpdate(CamelSchema, frozen=True):
    status: Literal["resolved", "dismissed"]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=1000, pattern=NOT_BLANK)]


# -- helpers -------------------------------------------------------------------------------------------


def _affected(alert: AlertView) -> list[AffectedResource]:
    """The alert's entity (an identity, or a source address), then the accounts its evidence lists."""
    accounts = alert.explanation.get("evidence", {}).get("accounts", [])
    return [
        AffectedResource(type=entity_kind(alert.squid_id), id=alert.squid_id),
        *(AffectedResource(type="identity", id=str(account)) for account in accounts),
    ]


def alert_view(alert: AlertView) -> Alert:
    technique = [alert.technique] if alert.technique else []
    metadata: dict[str, Any] = {
        "squidId": alert.squid_id, "pattern": alert.pattern, "technique": alert.technique, "score": alert.score,
        "explanation": dict(alert.explanation), "occurrences": alert.occurrences, "dedupKey": alert.dedup_key,
    }  # fmt: skip
    if alert.reason is not None:
        metadata["reason"] = alert.reason
    title = f"{alert.pattern.replace('_', ' ')}{' (' + alert.technique + ')' if alert.technique else ''}"
    return Alert(
        id=alert.id,
        type=alert.pattern,
        severity=alert.severity,
        status=alert.status,
        title=f"{title} on {alert.squid_id}"[:200],
        description=alert.description[:2000] or title,
        source=AlertSource(),
        created_at=iso_epoch_ms(alert.created_at_ms),
        updated_at=iso_epoch_ms(alert.updated_at_ms),
        resolved_at=iso_epoch_ms(alert.updated_at_ms) if alert.status != "active" else None,
        affected_resources=_affected(alert),
        tags=[alert.pattern, *technique],
        metadata=metadata,
    )


def _feature_rows(rows: list[dict[str, Any]]) -> list[FeatureRow]:
    problems: dict[str, str] = {}
    parsed: list[FeatureRow] = []
    for index, row in enumerate(rows):
        values: dict[str, float] = {}
        for name in FEATURE_COLUMNS:
            value = row.get(name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
                problems[f"data.features[{index}].{name}"] = "a finite number is required"
            else:
                values[name] = float(value)
        window_start = row.get("windowStart")
        start_ms = 0
        if window_start is not None:
            try:
                start_ms = int(dt.datetime.fromisoformat(str(window_start)).timestamp() * 1000)
            except ValueError:
                problems[f"data.features[{index}].windowStart"] = "an ISO 8601 date-time is required"
        parsed.append(FeatureRow(str(row.get("squidId", f"row-{index}")), start_ms, values))
        if len(problems) >= 20:
            break
    if problems:
        raise ValidationError("invalid feature rows", details=problems)
    return parsed


def _summary(anomalies: list[Anomaly]) -> AnomalySummary:
    by_severity = {name: sum(a.severity == name for a in anomalies) for name in ("low", "medium", "high", "critical")}
    by_type: dict[str, int] = {}
    for anomaly in anomalies:
        by_type[anomaly.type] = by_type.get(anomaly.type, 0) + 1
    average = sum(a.confidence for a in anomalies) / len(anomalies) if anomalies else 0.0
    return AnomalySummary(
        total_anomalies=len(anomalies),
        severity_distribution=SeverityDistribution(**by_severity),
        average_confidence=round(average, 6),
        high_severity_count=by_severity["high"] + by_severity["critical"],
        type_distribution=by_type,
    )


def _decoded_events(raw_events: list[dict[str, Any]]) -> list[AuditEventRequest]:
    decoded = []
    for index, raw in enumerate(raw_events):
        try:
            decoded.append(convert_event(raw))
        except ValidationError as exc:
            details = {f"data.events[{index}]": exc.details or exc.message}
            raise ValidationError("invalid event", details=details) from exc
    return decoded


def detect_anomalies(detection: DetectionService, body: DetectRequest) -> DetectResult:
    """``POST /anomaly/detect`` and the MCP ``qerberos.detectAnomaly`` tool: the champion (or the named model)
    scores the given events or feature rows."""
    data = body.data
    if (data.events is None) == (data.features is None):
        raise ValidationError("give data.events or data.features", details={"data": "exactly one of events, features"})
    items = data.events if data.events is not None else data.features
    if not items or len(items) > MAX_ROWS:
        raise ValidationError("invalid data", details={"data": f"between 1 and {MAX_ROWS} items"})
    if data.events is not None:
        found = detect_events(detection, _decoded_events(data.events), body.model, body.threshold)
    else:
        found = detect_feature_rows(detection, _feature_rows(items), body.model, body.threshold)
    return _result(found)


def _anomaly(finding: Finding) -> Anomaly:
    return Anomaly(
        id=str(uuid.uuid4()),
        type=finding.kind,
        severity=finding.severity,  # type: ignore[arg-type]
        confidence=finding.confidence,
        description=finding.description,
        timestamp=iso_epoch_ms(finding.occurred_at_ms),
        features=finding.features,
        context=finding.context,
    )


def _result(found: Findings) -> DetectResult:
    anomalies = [_anomaly(finding) for finding in found.findings]
    model_info = ModelInfo(
        name="qerberos-detector", version=found.model_version, algorithm=found.algorithm, threshold=found.threshold
    )
    return DetectResult(
        anomalies=anomalies[:1000], summary=_summary(anomalies), timestamp=iso_timestamp(),
        analysis_id=str(uuid.uuid4()), model_info=model_info,
    )  # fmt: skip


# -- controllers ---------------------------------------------------------------------------------------


def _alerts_operation(name: str) -> Any:
    """The upstream's path (``/anomaly/alerts``) keeps the upstream's id; ``/alerts`` gets ``<id>Alias``."""

    def operation_id(handler: Any, method: Any, path_components: list[Any]) -> str:
        return name if "anomaly" in path_components else f"{name}Alias"

    return operation_id


class AnomalyController(Controller):
    path = "/anomaly"
    tags = ("Anomaly Detection",)
    dependencies = provides("detection")

    @post("/detect", status_code=200, sync_to_thread=True, opt={"permission": DETECT}, summary="Detect anomalies",
          operation_id="detectAnomalies")  # fmt: skip
    def detect(self, detection: Detection, data: JSONBody[DetectRequest]) -> Envelope[DetectResult]:
        result = detect_anomalies(detection, data)
        return ok(result, code="ANOMALY_DETECTION_COMPLETED", message=f"{len(result.anomalies)} anomalies")


class AlertsController(Controller):
    path = "/alerts"
    tags = ("Anomaly Detection",)
    dependencies = provides("alerts")

    @get("/", opt={"permission": READ}, summary="Get security alerts (newest first)",
         operation_id=_alerts_operation("getSecurityAlerts"))  # fmt: skip
    async def list_alerts(
        self,
        request: Request[Any, Any, Any],
        alerts: Alerts,
        severity: Annotated[_Severity | None, QueryParameter()] = None,
        status: Annotated[Literal["active", "resolved", "dismissed"] | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        cursor: Annotated[
            str | None, QueryParameter(max_length=200, description="nextCursor of the previous page")
        ] = None,
        format: Annotated[
            Literal["json", "ocsf"],
            QueryParameter(description="ocsf: OCSF 1.7 Detection Findings, one per line (application/x-ndjson)"),
        ] = "json",
    ) -> Response[Envelope[AlertPage]]:
        # in a thread this way: Litestar 2.25 does not await the Response of a sync_to_thread handler
        listed, total = await anyio.to_thread.run_sync(
            functools.partial(alerts.page, severity=severity, status=status, limit=limit + 1, after=cursor)
        )
        if format == "ocsf":
            service = request.app.state.service
            return ocsf_response(alert_lines(listed[:limit], service.taxonomy, service.require_ledger().origin))
        page = AlertPage(
            alerts=[alert_view(a) for a in listed[:limit]],
            total_count=total,
            has_more=len(listed) > limit,
            next_cursor=alert_cursor(listed[limit - 1]) if len(listed) > limit else None,
        )
        return Response(ok(page))

    @patch("/{alert_id:str}", sync_to_thread=True, opt={"permission": MANAGE}, summary="Resolve or dismiss an alert",
           operation_id=_alerts_operation("updateSecurityAlert"))  # fmt: skip
    def update_alert(
        self, request: Request[Any, Any, Any], alerts: Alerts, alert_id: FromPath[str], data: JSONBody[AlertUpdate]
    ) -> Envelope[Alert]:
        try:
            uuid.UUID(alert_id)
        except ValueError as exc:
            raise ValidationError("invalid alert id", details={"id": "not a UUID"}) from exc
        caller = request.scope.get("user")
        actor = Actor(caller.squid_id, caller.sub_id, caller.dao_id) if caller is not None else None
        source = getattr(caller, "source", None) or "anonymous"
        alert = alerts.set_status(alert_id, data.status, data.reason, actor=actor, source=source)
        return ok(alert_view(alert), code="ALERT_UPDATED", message=f"alert {data.status}")


class AnomalyAlertsController(AlertsController):
    """The upstream's path for the same routes."""

    path = "/anomaly/alerts"
