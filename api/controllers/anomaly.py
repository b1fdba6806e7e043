"""``/anomaly/detect``, ``/anomaly/alerts`` and ``/alerts``: score given data, list and handle alerts.

``/anomaly/detect`` reads ``app.state.detection`` (a ``pipelines.live_detection.LiveDetection``), which
``detection_lifespan`` creates and starts after the service lifespan has opened the ledger. The alert routes
read ``app.state.alerts`` (a ``pipelines.alert_service.AlertService``), the engine's own store, or one over the ledger
alone where live detection is off (API replicas beside ``qerberos detect``): alerts live in the shared
database either way. Each route names its permission in ``opt["permission"]`` (the app's permission guard
enforces it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import anyio.to_thread
import msgspec
from litestar import Controller, Litestar, Request, get, patch, post
from litestar.params import FromPath, JSONBody, QueryParameter

from analytics.live_events import live_event
from analytics.rules import RuleEngine
from analytics.window_features import FEATURE_COLUMNS, FeatureRow, rows_from_events
from api.envelope import Envelope, iso_timestamp, ok
from api.schemas import CamelSchema
from models.alerts import AlertView
from models.ledger import parse_seq
from models.records import Actor
from models.wire_events import convert_event
from pipelines.alert_service import AlertService
from pipelines.live_detection import LiveDetection, score_rows
from qerberos.errors import DependencyUnavailableError, ValidationError

__all__ = ["AlertsController", "AnomalyAlertsController", "AnomalyController", "detection_lifespan"]

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
    alerts: list[Alert]
    total_count: int


class AlertUpdate(CamelSchema, frozen=True):
    status: Literal["resolved", "dismissed"]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


# -- helpers -------------------------------------------------------------------------------------------


def detection_of(request: Request[Any, Any, Any]) -> LiveDetection:
    detection = getattr(request.app.state, "detection", None)
    if not isinstance(detection, LiveDetection):
        raise DependencyUnavailableError("live detection is not running (the service is starting or stopping)")
    return detection


def alerts_of(request: Request[Any, Any, Any]) -> AlertService:
    detection = getattr(request.app.state, "detection", None)
    store = detection.store if isinstance(detection, LiveDetection) else getattr(request.app.state, "alerts", None)
    if not isinstance(store, AlertService):
        raise DependencyUnavailableError("the alert store is not open (the service is starting or stopping)")
    return store


def _iso_ms(ms: int) -> str:
    return iso_timestamp(dt.datetime.fromtimestamp(ms / 1000, dt.UTC))


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
        created_at=_iso_ms(alert.created_at_ms),
        updated_at=_iso_ms(alert.updated_at_ms),
        resolved_at=_iso_ms(alert.updated_at_ms) if alert.status != "active" else None,
        affected_resources=[AffectedResource(type="identity", id=alert.squid_id)],
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


def _detect(detection: LiveDetection, body: DetectRequest) -> DetectResult:
    data = body.data
    if (data.events is None) == (data.features is None):
        raise ValidationError("give data.events or data.features", details={"data": "exactly one of events, features"})
    items = data.events if data.events is not None else data.features
    assert items is not None
    if not items or len(items) > MAX_ROWS:
        raise ValidationError("invalid data", details={"data": f"between 1 and {MAX_ROWS} items"})
    anomalies: list[Anomaly] = []
    if data.events is not None:
        events = []
        for index, raw in enumerate(data.events):
            try:
                request = convert_event(raw)
            except ValidationError as exc:
                raise ValidationError(
                    "invalid event", details={f"data.events[{index}]": exc.details or exc.message}
                ) from exc
            moment = request.timestamp or dt.datetime.now(dt.UTC)
            details = msgspec.json.encode(request.details).decode() if request.details is not None else None
            events.append(
                live_event(
                    detection.config.taxonomy,
                    index,
                    request.actor.squid_id,
                    request.type,
                    request.ref,
                    request.layer,
                    request.verdict,
                    int(moment.timestamp() * 1000),
                    request.actor.dao_id,
                    details,
                )
            )
        rows = rows_from_events(events, detection.config.live.window)
        rules = RuleEngine(detection.config.rules)
        for event in sorted(events, key=lambda e: (e.occurred_at_ms, e.seq)):
            for hit in rules.observe(event):
                anomalies.append(Anomaly(
                    id=str(uuid.uuid4()), type="pattern", severity=hit.severity,  # type: ignore[arg-type]
                    confidence=round(min(1.0, 1.0 - 0.5 * hit.threshold / max(hit.value, 1)), 6),
                    description=hit.description, timestamp=_iso_ms(hit.occurred_at_ms),
                    context={"squidId": hit.squid_id, "rule": hit.rule, "technique": hit.technique, **hit.evidence},
                ))  # fmt: skip
    else:
        rows = _feature_rows(data.features or [])
    detector = _model(detection, body.model)
    settings = detection.config.anomaly
    threshold = settings.min_confidence if body.threshold is None else body.threshold
    for item in score_rows(detector, rows):
        if item.confidence < threshold or (body.threshold is None and not item.past_threshold):
            continue
        anomalies.append(Anomaly(
            id=str(uuid.uuid4()), type="behavioral",
            severity="high" if item.confidence >= settings.high_confidence else "medium",
            confidence=round(item.confidence, 6),
            description=f"unusual behaviour of {item.row.squid_id} (score {item.raw:.3g}, threshold "
            f"{float(detector.alert_threshold):.3g})",
            timestamp=_iso_ms(item.row.window_start_ms),
            features={k: round(v, 6) for k, v in item.row.values.items()},
            context={"squidId": item.row.squid_id, "window": detection.config.live.window,
                     "modelVersion": str(detector.version)},
        ))  # fmt: skip
    model_info = ModelInfo(
        name="qerberos-detector", version=f"{detector.version}.0.0", algorithm=str(detector.pipeline.name),
        threshold=threshold,
    )  # fmt: skip
    return DetectResult(
        anomalies=anomalies[:1000], summary=_summary(anomalies), timestamp=iso_timestamp(),
        analysis_id=str(uuid.uuid4()), model_info=model_info,
    )  # fmt: skip


def _model(detection: LiveDetection, name: str | None) -> Any:
    if name is None or name in ("champion", "qerberos-detector"):
        detector = detection.detector()
        if detector is None:
            raise DependencyUnavailableError("no detector model is loaded (no MLflow champion yet)")
        return detector
    if parse_seq(name) is None:  # ASCII digits: str.isdigit() also takes "²", which the registry then fails on
        raise ValidationError("unknown model", details={"model": "champion, or a registered version number"})
    if detection.tracking_uri is None:
        raise DependencyUnavailableError("no model registry is configured")
    from pipelines.model_registry import load_version

    return load_version(detection.tracking_uri, name)


# -- controllers ---------------------------------------------------------------------------------------


def _alerts_operation(kind: str) -> Any:
    def operation_id(handler: Any, method: Any, path_components: list[Any]) -> str:
        prefix = "anomaly" if "anomaly" in path_components else "alerts"
        return f"{prefix}{kind}"

    return operation_id


class AnomalyController(Controller):
    path = "/anomaly"
    tags = ("Anomaly Detection",)

    @post("/detect", status_code=200, sync_to_thread=True, opt={"permission": DETECT}, summary="Detect anomalies",
          operation_id="detectAnomalies")  # fmt: skip
    def detect(self, request: Request[Any, Any, Any], data: JSONBody[DetectRequest]) -> Envelope[DetectResult]:
        result = _detect(detection_of(request), data)
        return ok(result, code="ANOMALY_DETECTION_COMPLETED", message=f"{len(result.anomalies)} anomalies")


class AlertsController(Controller):
    path = "/alerts"
    tags = ("Anomaly Detection",)

    @get("/", sync_to_thread=True, opt={"permission": READ}, summary="Get security alerts (newest first)",
         operation_id=_alerts_operation("GetSecurityAlerts"))  # fmt: skip
    def list_alerts(
        self,
        request: Request[Any, Any, Any],
        severity: Annotated[_Severity | None, QueryParameter()] = None,
        status: Annotated[Literal["active", "resolved", "dismissed"] | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> Envelope[AlertPage]:
        store = alerts_of(request)
        alerts = store.list(severity=severity, status=status, limit=limit)
        page = AlertPage(
            alerts=[alert_view(a) for a in alerts], total_count=store.count(severity=severity, status=status)
        )
        return ok(page)

    @patch("/{alert_id:str}", sync_to_thread=True, opt={"permission": MANAGE}, summary="Resolve or dismiss an alert",
           operation_id=_alerts_operation("UpdateSecurityAlert"))  # fmt: skip
    def update_alert(
        self, request: Request[Any, Any, Any], alert_id: FromPath[str], data: JSONBody[AlertUpdate]
    ) -> Envelope[Alert]:
        try:
            uuid.UUID(alert_id)
        except ValueError as exc:
            raise ValidationError("invalid alert id", details={"id": "not a UUID"}) from exc
        caller = request.scope.get("user")
        actor = Actor(caller.squid_id, caller.sub_id, caller.dao_id) if caller is not None else None
        source = getattr(caller, "source", None) or "anonymous"
        alert = alerts_of(request).set_status(alert_id, data.status, data.reason, actor=actor, source=source)
        return ok(alert_view(alert), code="ALERT_UPDATED", message=f"alert {data.status}")


class AnomalyAlertsController(AlertsController):
    """The upstream's path for the same routes."""

    path = "/anomaly/alerts"


@contextlib.asynccontextmanager
async def detection_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Start live detection once the service lifespan has opened the ledger; stop it at shutdown.

    Register after ``api.lifecycle.lifespan``: ``lifespan=[lifespan, detection_lifespan]``.
    """
    state = app.state.service
    if state.settings.live_detection == "off":  # a separate `qerberos detect` process does it
        ledger = state.require_ledger()  # its schema, the alert tables included, is `qerberos init`'s
        app.state.detection = None
        app.state.alerts = AlertService(ledger.engine, ledger)
        try:
            yield
        finally:
            app.state.alerts = None
        return
    from pipelines.model_registry import ChampionWatcher  # MLflow and PyOD: loaded only where detection runs

    ledger = state.require_ledger()
    watcher = ChampionWatcher(state.settings.mlflow_tracking_uri)
    uri = state.settings.mlflow_tracking_uri
    detection = await anyio.to_thread.run_sync(lambda: LiveDetection(ledger, watcher, tracking_uri=uri))
    app.state.detection = detection
    detection.start()
    try:
        yield
    finally:
        await anyio.to_thread.run_sync(detection.stop)
        app.state.detection = None
