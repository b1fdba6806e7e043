"""Detection on data a caller gives (``POST /anomaly/detect``), with the live engine's rules and models.

``detect_events`` runs the rules over the events in time order and scores their feature windows;
``detect_feature_rows`` scores feature rows as given. Both answer ``Findings``: the rule hits (``pattern``)
then the windows the detector flags (``behavioral``), with the model that scored them. ``model`` is the
champion (``None``, ``"champion"``, ``"qerberos-detector"``) or a registered version number; ``threshold``
overrides the configured minimum confidence (and then also keeps windows under the model's own threshold).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from analytics.live_events import LiveEvent, live_event
from analytics.rules import DetectionConfig, RuleEngine, load_detection_config
from analytics.window_features import FeatureRow, rows_from_events
from models.ledger import parse_seq
from models.wire_events import AuditEventRequest
from pipelines.live_detection import LiveDetection, score_rows
from qerberos.errors import DependencyUnavailableError, ValidationError

__all__ = ["Detection", "Finding", "Findings", "ReplicaDetection", "detect_events", "detect_feature_rows"]

CHAMPION_NAMES = ("champion", "qerberos-detector")


class ReplicaDetection:
    """What on-demand detection needs on an API replica that runs no live detection
    (``QERBEROS_LIVE_DETECTION=off``, the documented scale-out beside one ``qerberos detect``): the rules'
    configuration and the MLflow champion, loaded on the first request and looked up again at most every
    ``[live] refresh_seconds``. It offers what ``detect_*`` read of ``LiveDetection``: ``config``,
    ``detector()`` and ``tracking_uri``."""

    def __init__(self, tracking_uri: str, config: DetectionConfig | None = None) -> None:
        self.config = config or load_detection_config()
        self.tracking_uri: str | None = tracking_uri
        self._uri = tracking_uri
        self._watcher: Any = None  # a ChampionWatcher: MLflow and PyOD load with the first model, not the API
        self._lock = threading.Lock()
        self._checked_at: float | None = None

    def detector(self) -> Any:
        """The champion (None while the registry has none)."""
        with self._lock:
            now = time.monotonic()
            if self._watcher is None:
                from pipelines.model_registry import ChampionWatcher

                self._watcher = ChampionWatcher(self._uri)
            if self._checked_at is None or now - self._checked_at >= self.config.live.refresh_seconds:
                self._checked_at = now
                self._watcher.refresh()
            return self._watcher.current()


#: the live engine, or a replica's champion
Detection = LiveDetection | ReplicaDetection


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """One anomaly: a rule hit (``pattern``) or a window the detector flags (``behavioral``)."""

    kind: Literal["pattern", "behavioral"]
    severity: str
    confidence: float
    description: str
    occurred_at_ms: int
    context: dict[str, Any]
    features: dict[str, float] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Findings:
    findings: list[Finding]
    model_version: str
    algorithm: str
    threshold: float


def detect_events(
    detection: Detection, requests: Sequence[AuditEventRequest], model: str | None, threshold: float | None
) -> Findings:
    """Rules over ``requests`` (an event without a timestamp happens now), then the detector over their windows."""
    events = [_live_event(detection, index, request) for index, request in enumerate(requests)]
    rules = RuleEngine(detection.config.rules)
    hits = [Finding(
        kind="pattern", severity=hit.severity,
        confidence=round(min(1.0, 1.0 - 0.5 * hit.threshold / max(hit.value, 1)), 6),
        description=hit.description, occurred_at_ms=hit.occurred_at_ms,
        context={"squidId": hit.squid_id, "rule": hit.rule, "technique": hit.technique, **hit.evidence},
    ) for event in sorted(events, key=lambda e: (e.occurred_at_ms, e.seq)) for hit in rules.observe(event)]  # fmt: skip
    return _scored(detection, rows_from_events(events, detection.config.live.window), model, threshold, hits)


def detect_feature_rows(
    detection: Detection, rows: Sequence[FeatureRow], model: str | None, threshold: float | None
) -> Findings:
    return _scored(detection, rows, model, threshold, [])


def _live_event(detection: Detection, index: int, request: AuditEventRequest) -> LiveEvent:
    moment = request.timestamp or dt.datetime.now(dt.UTC)
    details = msgspec.json.encode(request.details).decode() if request.details is not None else None
    return live_event(
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


def _scored(
    detection: Detection,
    rows: Sequence[FeatureRow],
    model: str | None,
    threshold: float | None,
    findings: list[Finding],
) -> Findings:
    detector = _detector(detection, model)
    settings = detection.config.anomaly
    floor = settings.min_confidence if threshold is None else threshold
    for item in score_rows(detector, rows):
        if item.confidence < floor or (threshold is None and not item.past_threshold):
            continue
        findings.append(Finding(
            kind="behavioral",
            severity="high" if item.confidence >= settings.high_confidence else "medium",
            confidence=round(item.confidence, 6),
            description=f"unusual behaviour of {item.row.squid_id} (score {item.raw:.3g}, threshold "
            f"{float(detector.alert_threshold):.3g})",
            occurred_at_ms=item.row.window_start_ms,
            features={k: round(v, 6) for k, v in item.row.values.items()},
            context={"squidId": item.row.squid_id, "window": detection.config.live.window,
                     "modelVersion": str(detector.version)},
        ))  # fmt: skip
    return Findings(findings, f"{detector.version}.0.0", str(detector.pipeline.name), floor)


def _detector(detection: Detection, name: str | None) -> Any:
    if name is None or name in CHAMPION_NAMES:
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
