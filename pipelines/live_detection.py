"""Live detection: tail the ledger, update the affected identities' feature windows, score, apply rules, alert.

How it runs
    ``LiveDetection(ledger, watcher).start()`` starts one daemon thread that, every ``poll_seconds``, reads the
    ledger's events with ``seq`` past its cursor (``models.reader.LedgerReader.tail``; the cursor is kept in the
    ``detector_cursor`` table), so it sees events from every API replica and from ``qerberos ingest`` alike.
    Every ``refresh_seconds`` it asks the ``ChampionWatcher`` for a new champion (hot reload;
    ``qerberos_detector_model_loaded`` tells whether a model is in use).

Metrics (``detector_metrics``), exported only by processes that run live detection, so that an API replica
with it off claims nothing about a model: ``qerberos_detector_model_loaded`` (1/0),
``qerberos_detector_caught_up_timestamp_seconds`` (when the alerting instance last had read every event:
``time()`` minus it is the scoring lag, and it grows when the loop falls behind or hangs),
``qerberos_detector_errors_total{stage}`` (``round``, ``model``, ``scoring``, ``alert``, ``cursor``),
``qerberos_detector_score`` (histogram of the windows' confidence) and
``qerberos_alerts_created_total{pattern,severity}``.

One alerting instance per database (leader election)
    Only the instance holding the detector lock (``models.detector_lock.LeaderLock``: a PostgreSQL advisory
    lock, or a ``flock`` beside the SQLite file) tails and alerts. The others keep their model fresh (for
    ``POST /anomaly/detect``) and retry the lock every ``leader_retry_seconds``; when the leader dies its lock
    goes with it and another instance takes over from the stored cursor. Alert writes are idempotent besides:
    at most one active alert per ``dedup_key`` (a partial unique index), so even two leaders would update one
    alert rather than open two.

Categories
    Every event read is classified by ``config.taxonomy`` (``analytics.taxonomy``) before rules and features see
    it. When a round finds nothing new, the leader also stores the categories of a batch of events not yet
    stored (``pipelines.categories.catch_up``: all of history again after a change of taxonomy).

Features, incrementally
    ``analytics.window_features.IncrementalFeatures`` updates the affected identities' windows event by event,
    with the same definition as the batch features the detector was trained on.

Scores and alerts
    A window's confidence is the share of the champion's training windows that scored lower (0..1). A window
    alerts (pattern ``anomaly``) when its raw score passes the champion's ``alert_threshold`` and its
    confidence reaches ``[anomaly] min_confidence`` or, when a rule hit the identity within the window (two
    independent signals agreeing), ``corroborated_confidence``, then at high severity.

    A spray's victim's window raises no anomaly alert: a window holding events from an address whose password
    spray in progress lists the identity (``RuleEngine.spraying_addresses``) is the spray's doing, already on
    the address's one alert. (Live, the victims scored before the spray crosses its threshold may still be
    alerted; rule alerts, such as a successful sign-in from a new country after the spray, are never folded.)
    Rule hits (``analytics.rules``) alert with their own pattern and ATT&CK technique.
    ``pipelines.alert_service.AlertService`` deduplicates and records creations in the ledger.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import polars as pl
from prometheus_client import Counter, Gauge, Histogram

from analytics.alert_evidence import technique_of
from analytics.explain import explain
from analytics.live_events import LiveEvent, live_event
from analytics.rules import DetectionConfig, RuleEngine, RuleHit, load_detection_config
from analytics.window_features import FEATURE_COLUMNS, FeatureRow, IncrementalFeatures
from models.alerts import AlertCandidate, AlertChange, ScoreRow, create_alert_tables
from models.categories import CategoryStore
from models.detector_lock import LeaderLock
from models.reader import LedgerReader
from pipelines.alert_service import AlertService
from pipelines.categories import catch_up
from qerberos.errors import QerberosError
from qerberos.instants import iso_epoch_ms

__all__ = ["ERROR_STAGES", "LiveDetection", "Scored", "confidence", "detector_metrics", "score_rows"]

logger = logging.getLogger(__name__)


ERROR_STAGES = ("round", "model", "scoring", "alert", "cursor")
SCORE_BUCKETS = (0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0)


@dataclasses.dataclass(frozen=True, slots=True)
class DetectorMetrics:
    model_loaded: Gauge
    caught_up: Gauge
    errors: Counter
    scores: Histogram
    alerts_created: Counter


@functools.cache
def detector_metrics() -> DetectorMetrics:
    """The detector's metrics, registered on first use (see the module doc), each error stage at 0 so that
    its first error is an increase Prometheus can see."""
    metrics = DetectorMetrics(
        Gauge("qerberos_detector_model_loaded", "1 when a detector model (the MLflow champion) is loaded.",
              multiprocess_mode="livemax"),
        Gauge("qerberos_detector_caught_up_timestamp_seconds",
              "When this process, leading live detection, last had read every event of the ledger (Unix time).",
              multiprocess_mode="livemax"),
        Counter("qerberos_detector_errors", "Live detection failures, by stage.", ["stage"]),
        Histogram("qerberos_detector_score", "Confidence (0..1) of each scored window.", buckets=SCORE_BUCKETS),
        Counter("qerberos_alerts_created", "Alerts created by live detection.", ["pattern", "severity"]),
    )  # fmt: skip
    for stage in ERROR_STAGES:
        metrics.errors.labels(stage)
    return metrics


# -- scoring ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Scored:
    row: FeatureRow
    raw: float
    confidence: float
    past_threshold: bool


_train_scores: dict[tuple[str, int], np.ndarray] = {}


def confidence(detector: Any, raw: np.ndarray) -> np.ndarray:
    """Share of the detector's training windows scoring below each raw score (0..1)."""
    key = (str(detector.version), id(detector.pipeline))
    train = _train_scores.get(key)
    if train is None:
        train = _train_scores[key] = np.sort(np.asarray(detector.pipeline.decision_scores_, dtype=np.float64))
    if train.size == 0:
        return np.zeros_like(raw)
    return np.searchsorted(train, raw, side="left") / float(train.size)


def score_rows(detector: Any, rows: Sequence[FeatureRow]) -> list[Scored]:
    """Score feature rows with a loaded detector (``pipelines.model_registry.LoadedDetector``)."""
    if not rows:
        return []
    frame = pl.DataFrame([row.values for row in rows], schema={c: pl.Float64 for c in FEATURE_COLUMNS})
    raw = np.asarray(detector.score(frame), dtype=np.float64)
    conf = confidence(detector, raw)
    threshold = float(detector.alert_threshold)
    return [Scored(row, float(r), float(c), bool(r > threshold)) for row, r, c in zip(rows, raw, conf, strict=True)]


# -- the engine ------------------------------------------------------------------------------------------


class LiveDetection:
    """The live detection engine of one API process (see the module doc).

    ``ledger``: a ``models.ledger.Ledger`` (its engine is read; alerts are appended to it). ``watcher``: an
    ``pipelines.model_registry.ChampionWatcher`` (None: rules only); ``tracking_uri``: its MLflow store (lets
    ``POST /anomaly/detect`` load a named version). Tests call ``run_once()`` directly.
    """

    def __init__(
        self,
        ledger: Any,
        watcher: Any | None,
        *,
        config: DetectionConfig | None = None,
        tracking_uri: str | None = None,
    ) -> None:
        self.config = config or load_detection_config()
        self.tracking_uri = tracking_uri
        self.ledger = ledger
        self.watcher = watcher
        create_alert_tables(ledger.engine)
        CategoryStore(ledger.engine).create()
        self.store = AlertService(ledger.engine, ledger)
        self._reader = LedgerReader(ledger.engine)
        self._leadership = LeaderLock(ledger.engine)
        self._metrics = detector_metrics()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()
        self._features: IncrementalFeatures | None = None
        self._rules: RuleEngine | None = None
        self._last_seq = -1
        self._last_refresh = -math.inf
        self._last_leader_try = -math.inf

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._leadership.open()
        self._thread = threading.Thread(target=self._loop, name="qerberos-live-detection", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._leadership.release()
        self._metrics.model_loaded.set(0)

    def detector(self) -> Any | None:
        """The loaded champion (``LoadedDetector``) or None."""
        return None if self.watcher is None else self.watcher.current()

    def refresh_model(self) -> bool:
        """Ask the watcher for a new champion; True when the model in use changed."""
        self._last_refresh = time.monotonic()
        changed = False
        if self.watcher is not None:
            try:
                changed = bool(self.watcher.refresh())
            except QerberosError as exc:  # the watcher logs and keeps its model; never kill the loop
                logger.warning("champion refresh failed: %s", exc.message)
                self._metrics.errors.labels("model").inc()
        self._metrics.model_loaded.set(1 if self.detector() is not None else 0)
        return changed

    def _loop(self) -> None:
        live = self.config.live
        while not self._stop.is_set():
            busy = False
            try:
                if time.monotonic() - self._last_refresh >= live.refresh_seconds:
                    self.refresh_model()
                busy = self.run_once() >= live.batch_rows
                if not busy and self._leadership.held:
                    self._metrics.caught_up.set_to_current_time()
                    # idle: bring the stored categories up to date, a bounded batch a round (``pipelines.categories``)
                    busy = catch_up(self.ledger.engine, self.config.taxonomy, limit=live.batch_rows) >= live.batch_rows
            except Exception:  # the loop must survive a database or model hiccup; the next round retries
                logger.exception("live detection round failed")
                self._metrics.errors.labels("round").inc()
            if not busy:
                self._stop.wait(live.poll_seconds)

    # -- one round -----------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Process the events appended since the last round (if this instance leads); how many were read."""
        if not self._leadership.held:
            now = time.monotonic()
            if now - self._last_leader_try < self.config.live.leader_retry_seconds:
                return 0
            self._last_leader_try = now
            if not self._leadership.try_acquire():
                return 0
            logger.info("live detection leads alerting for this database")
        with self._state_lock:
            if self._features is None:
                self._bootstrap()
            return self._process(self._read(self._last_seq, self.config.live.batch_rows))

    def _bootstrap(self) -> None:
        """Rebuild feature and rule state from the events already processed (no alerts for them)."""
        live = self.config.live
        self._features = IncrementalFeatures(live.window, keep_windows=live.keep_windows)
        self._rules = RuleEngine(self.config.rules)
        cursor = self.store.cursor()
        after = -1
        replayed = 0
        while after < cursor:
            events = self._read(after, 50_000, upto=cursor)
            if not events:
                break
            for event in events:
                self._observe(event)
            replayed += len(events)
            after = events[-1].seq
        self._features.take_ready()
        self._last_seq = cursor
        logger.info("live detection state rebuilt from %d events (cursor %d)", replayed, cursor)

    def _read(self, after: int, limit: int, upto: int | None = None) -> list[LiveEvent]:
        taxonomy = self.config.taxonomy
        return [live_event(taxonomy, *row) for row in self._reader.tail(after, limit, upto=upto)]

    def _observe(self, event: LiveEvent) -> list[RuleHit]:
        assert self._features is not None and self._rules is not None
        if event.layer == "qerberos":
            return []  # qerberos's own audit events (alerts, erasures) are not behaviour
        self._features.add(event)
        return self._rules.observe(event)

    def _process(self, events: Sequence[LiveEvent]) -> int:
        if not events:
            return 0
        assert self._features is not None
        hits: list[RuleHit] = []
        for event in events:
            hits.extend(self._observe(event))
        self._last_seq = events[-1].seq  # the state has consumed them: never feed them twice
        rows = self._features.take_ready()
        latest = {(row.squid_id, row.window_start_ms): row for row in rows}
        newest: dict[str, int] = {}
        for event in events:
            newest[event.squid_id] = max(event.occurred_at_ms, newest.get(event.squid_id, event.occurred_at_ms))
        candidates = [self._rule_candidate(hit, latest) for hit in hits]
        try:
            candidates += list(self._anomaly_candidates(rows, newest))
        except QerberosError as exc:
            logger.error("scoring %d windows failed: %s", len(rows), exc.message)
            self._metrics.errors.labels("scoring").inc()
        for candidate in candidates:
            self._raise(candidate)
        try:
            self.store.save_cursor(self._last_seq)
        except QerberosError as exc:
            logger.warning("detector cursor not saved (next leader replays a little more): %s", exc.message)
            self._metrics.errors.labels("cursor").inc()
        return len(events)

    def _raise(self, candidate: AlertCandidate) -> AlertChange | None:
        try:
            change = self.store.raise_alert(candidate)
        except QerberosError as exc:
            logger.error("alert %s not recorded: %s", candidate.dedup_key, exc.message)
            self._metrics.errors.labels("alert").inc()
            return None
        if change.kind == "created":
            self._metrics.alerts_created.labels(candidate.pattern, candidate.severity).inc()
            logger.info("alert %s %s (%s) on %s", change.alert.id, candidate.pattern, candidate.severity,
                        candidate.squid_id)  # fmt: skip
        return change

    def _anomaly_candidates(self, rows: Sequence[FeatureRow], newest: dict[str, int]) -> Iterator[AlertCandidate]:
        """Alerts of the windows past the threshold, each dated by its identity's newest event of the batch."""
        detector = self.detector()
        if detector is None or not rows:
            return
        scored = score_rows(detector, rows)
        for item in scored:
            self._metrics.scores.observe(item.confidence)
        self.store.record_scores(
            [ScoreRow(s.row.squid_id, s.row.window_start_ms, s.confidence, detector.version) for s in scored]
        )
        settings = self.config.anomaly
        assert self._rules is not None
        for item in scored:
            corroborated = self._rules.hit_since(item.row.squid_id, item.row.window_start_ms)
            floor = settings.corroborated_confidence if corroborated else settings.min_confidence
            if item.past_threshold and item.confidence >= floor:
                candidate = self._anomaly_candidate(detector, item, newest.get(item.row.squid_id), corroborated)
                sprays = self._rules.spraying_addresses(item.row.squid_id, item.row.window_start_ms)
                if sprays & set(candidate.explanation.get("evidence", {}).get("addresses", ())):
                    logger.debug("anomaly of %s folded into the spray alert listing it", item.row.squid_id)
                    continue
                yield candidate

    def _anomaly_candidate(
        self, detector: Any, item: Scored, occurred_at_ms: int | None, corroborated: bool
    ) -> AlertCandidate:
        settings = self.config.anomaly
        assert self._features is not None
        drivers = explain(
            item.row.values, detector.feature_columns, baseline=self._features.baseline(item.row.squid_id),
            center=getattr(detector.pipeline, "center_", None), scale=getattr(detector.pipeline, "scale_", None),
            top=settings.explain_top,
        )  # fmt: skip
        top = ", ".join(f"{d.feature}={d.value:g} (baseline {d.baseline:.3g})" for d in drivers[:3])
        evidence = self._features.evidence(item.row.squid_id, item.row.window_start_ms)
        values = evidence.to_json() if evidence is not None else {}
        new = [f"new {what}: {', '.join(values[key][:3])}" for what, key in
               (("country", "newCountries"), ("address", "newAddresses")) if values.get(key)]  # fmt: skip
        if corroborated:
            new.append("a detection rule hit the identity in this window too")
        return AlertCandidate(
            squid_id=item.row.squid_id,
            pattern="anomaly",
            technique=technique_of((d.feature for d in drivers), settings.techniques),
            severity="high" if corroborated or item.confidence >= settings.high_confidence else "medium",
            score=item.confidence,
            description=f"unusual behaviour in the {self.config.live.window} window from "
            f"{iso_epoch_ms(item.row.window_start_ms)}: {'; '.join([top, *new])}",
            explanation={
                "modelVersion": str(detector.version),
                "rawScore": item.raw,
                "threshold": float(detector.alert_threshold),
                "window": self.config.live.window,
                "windowStart": iso_epoch_ms(item.row.window_start_ms),
                "features": [d.to_json() for d in drivers],
                "evidence": values,
            },
            window_start_ms=item.row.window_start_ms,
            occurred_at_ms=occurred_at_ms,
        )

    def _rule_candidate(self, hit: RuleHit, latest: dict[tuple[str, int], FeatureRow]) -> AlertCandidate:
        assert self._features is not None
        size = self._features.size_ms
        start = hit.occurred_at_ms - hit.occurred_at_ms % size
        explanation: dict[str, Any] = {
            "rule": hit.rule,
            "evidence": dict(hit.evidence),
            "windowStart": iso_epoch_ms(start),
        }
        row = latest.get((hit.squid_id, start))
        if row is not None:
            drivers = explain(row.values, FEATURE_COLUMNS, baseline=self._features.baseline(hit.squid_id),
                              top=self.config.anomaly.explain_top)  # fmt: skip
            explanation["features"] = [d.to_json() for d in drivers]
        severity = hit.severity
        if hit.value >= 4 * hit.threshold and severity != "critical":
            severity = {"low": "medium", "medium": "high", "high": "critical"}[severity]
        return AlertCandidate(
            squid_id=hit.squid_id,
            pattern=hit.rule,
            technique=hit.technique,
            severity=severity,  # type: ignore[arg-type]
            score=min(1.0, 1.0 - 0.5 * hit.threshold / max(hit.value, 1)),
            description=hit.description,
            explanation=explanation,
            window_start_ms=start,
            occurred_at_ms=hit.occurred_at_ms,
        )
