"""Live detection: tail the ledger, update the affected identities' feature windows, score, apply rules, alert.

How it runs
    ``LiveDetection(ledger, watcher).start()`` starts one daemon thread that, every ``poll_seconds``, reads the
    ledger's events with ``seq`` past its cursor (``detector_cursor`` table), so it sees events from every API
    replica and from ``qerberos ingest`` alike. Every ``refresh_seconds`` it asks the ``ChampionWatcher`` for a
    new champion (hot reload; ``qerberos_detector_model_loaded`` tells whether a model is in use).

Metrics (``detector_metrics``), exported only by processes that run live detection, so that an API replica
with it off claims nothing about a model: ``qerberos_detector_model_loaded`` (1/0),
``qerberos_detector_caught_up_timestamp_seconds`` (when the alerting instance last had read every event:
``time()`` minus it is the scoring lag, and it grows when the loop falls behind or hangs),
``qerberos_detector_errors_total{stage}`` (``round``, ``model``, ``scoring``, ``alert``, ``cursor``),
``qerberos_detector_score`` (histogram of the windows' confidence) and
``qerberos_alerts_created_total{pattern,severity}``.

One alerting instance per database (leader election)
    Only the instance holding the detector lock tails and alerts: a session-level PostgreSQL advisory lock
    held on a dedicated connection, or an exclusive ``flock`` on ``<sqlite file>.detector.lock``. The others
    keep their model fresh (for ``POST /anomaly/detect``) and retry the lock every ``leader_retry_seconds``;
    when the leader dies its lock goes with its connection or process and another instance takes over from
    the stored cursor. Alert writes are idempotent besides: at most one active alert per ``dedup_key`` (a
    partial unique index), so even two leaders would update one alert rather than open two.

Features, incrementally
    ``IncrementalFeatures`` keeps, per identity, aggregates of its folded history (hour and hour-of-week
    counts, refs, countries, IPs seen, DAO counts) and the raw events of its last ``keep_windows`` windows. The
    features of a window are computed from these exactly as ``analytics.features.compute_features`` defines
    them over every event seen so far (the unit tests compare both on simulated traffic). An event older than
    the folded history (very late) is folded in without being scored.

Scores and alerts
    A window's confidence is the share of the champion's training windows that scored lower (0..1). A window
    alerts (pattern ``anomaly``) when its raw score passes the champion's ``alert_threshold`` and its
    confidence reaches ``[anomaly] min_confidence``. Rule hits (``analytics.rules``) alert with their own
    pattern and ATT&CK technique. ``models.alerts.AlertStore`` deduplicates and records creations in the ledger.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import itertools
import logging
import math
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import polars as pl
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from analytics.explain import explain
from analytics.features import AUTH_TYPES, FEATURE_COLUMNS, MIN_HISTORY_EVENTS, USUAL_HOUR_MIN_SHARE
from analytics.rules import DetectionConfig, LiveEvent, RuleEngine, RuleHit, load_detection_config
from models.alerts import AlertCandidate, AlertChange, AlertStore, ScoreRow, create_alert_tables
from qerberos.errors import QerberosError

__all__ = [
    "ERROR_STAGES",
    "FeatureRow",
    "IncrementalFeatures",
    "LiveDetection",
    "Scored",
    "confidence",
    "detector_metrics",
    "live_event",
    "rows_from_events",
    "score_rows",
]

logger = logging.getLogger(__name__)

WINDOW_MS = {"5m": 300_000, "1h": 3_600_000, "1d": 86_400_000}
_HOUR_MS = 3_600_000
_DAY_MS = 86_400_000
_PEER_COUNTS_KEPT = 48  # windows of per-identity event counts kept for peer deviations
_IP = re.compile(r'"ip"\s*:\s*"([^"]*)"')
_COUNTRY = re.compile(r'"country"\s*:\s*"([^"]*)"')
_LEADER_LOCK_KEY = 0x71_64_65_74  # "qdet": the advisory lock of the alerting instance
_TAIL_QUERY = text(
    "SELECT e.seq, e.actor_squid_id, e.type, e.ref, e.layer, e.verdict, e.occurred_at_ms, e.actor_dao_id, "
    "d.details FROM ledger_entries e LEFT JOIN event_details d ON d.seq = e.seq "
    "WHERE e.seq > :after AND e.seq <= :upto ORDER BY e.seq LIMIT :limit"
)


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


def live_event(
    seq: int,
    squid_id: str,
    type: str,
    ref: str,
    layer: str,
    verdict: str,
    occurred_at_ms: int,
    dao_id: str | None,
    details: str | None,
) -> LiveEvent:
    """A ledger row as rules and live features read it (``ip``/``country`` extracted as the features do)."""
    ip = country = None
    if details:
        found = _IP.search(details)
        ip = found.group(1) if found else None
        found = _COUNTRY.search(details)
        country = found.group(1) if found else None
    return LiveEvent(seq, squid_id, type, ref, layer, verdict, int(occurred_at_ms), dao_id, ip, country)


# -- incremental features -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class FeatureRow:
    squid_id: str
    window_start_ms: int
    values: dict[str, float]


@dataclasses.dataclass(slots=True)
class _Identity:
    events: int = 0  # folded history
    windows: int = 0
    hours: list[int] = dataclasses.field(default_factory=lambda: [0] * 24)
    slot_events: list[int] = dataclasses.field(default_factory=lambda: [0] * 168)
    slot_windows: list[int] = dataclasses.field(default_factory=lambda: [0] * 168)
    refs: set[str] = dataclasses.field(default_factory=set)
    countries: set[str] = dataclasses.field(default_factory=set)
    ips: set[str] = dataclasses.field(default_factory=set)
    folded_upto: int | None = None
    recent: dict[int, list[LiveEvent]] = dataclasses.field(default_factory=dict)
    counts: dict[int, int] = dataclasses.field(default_factory=dict)  # window -> events, for peers
    daos: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    peer_dao: str | None = None
    feature_sums: dict[str, float] = dataclasses.field(default_factory=dict)
    feature_windows: int = 0
    rows: dict[int, dict[str, float]] = dataclasses.field(default_factory=dict)  # last row of recent windows


def _slot(window_start_ms: int) -> int:
    weekday = (window_start_ms // _DAY_MS + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
    return weekday * 24 + (window_start_ms // _HOUR_MS) % 24


class IncrementalFeatures:
    """Per-identity window features, updated event by event (see the module doc)."""

    def __init__(self, window: str = "1h", *, keep_windows: int = 3) -> None:
        if window not in WINDOW_MS:
            raise ValueError(f"window must be one of {tuple(WINDOW_MS)}, not {window!r}")
        self.window = window
        self.size_ms = WINDOW_MS[window]
        self.keep_windows = max(1, keep_windows)
        self._ids: dict[str, _Identity] = collections.defaultdict(_Identity)
        self._members: dict[str, set[str]] = collections.defaultdict(set)
        self._dirty: set[tuple[str, int]] = set()
        self._ready: dict[tuple[str, int], FeatureRow] = {}

    def add(self, event: LiveEvent) -> None:
        who = self._ids[event.squid_id]
        start = event.occurred_at_ms - event.occurred_at_ms % self.size_ms
        if event.dao_id is not None:
            who.daos[event.dao_id] += 1
            self._update_membership(event.squid_id, who)
        if who.folded_upto is not None and start <= who.folded_upto:
            self._fold_events(who, [event], start, new_window=False)  # very late: history only, not scored
            logger.debug("late event %d of %s folded into history", event.seq, event.squid_id)
            return
        who.recent.setdefault(start, []).append(event)
        who.counts[start] = who.counts.get(start, 0) + 1
        self._dirty.add((event.squid_id, start))
        while len(who.recent) > self.keep_windows:
            self._fold_oldest(event.squid_id, who)

    def take_ready(self) -> list[FeatureRow]:
        """The current features of every window changed since the last call (each once), then forget them."""
        ready = self._ready
        for squid_id, start in self._dirty:
            ready[squid_id, start] = self.compute(squid_id, start)
        self._dirty = set()
        self._ready = {}
        return [ready[key] for key in sorted(ready)]

    def baseline(self, squid_id: str) -> dict[str, float] | None:
        """The mean of each feature over the identity's folded windows; None without any."""
        who = self._ids.get(squid_id)
        if who is None or who.feature_windows == 0:
            return None
        return {name: total / who.feature_windows for name, total in who.feature_sums.items()}

    def _update_membership(self, squid_id: str, who: _Identity) -> None:
        best = min(who.daos.items(), key=lambda item: (-item[1], item[0]))[0]
        if best != who.peer_dao:
            if who.peer_dao is not None:
                self._members[who.peer_dao].discard(squid_id)
            self._members[best].add(squid_id)
            who.peer_dao = best

    def _fold_oldest(self, squid_id: str, who: _Identity) -> None:
        start = min(who.recent)
        row = who.rows.get(start)
        if (squid_id, start) in self._dirty or row is None:
            computed = self.compute(squid_id, start)
            row = computed.values
            if (squid_id, start) in self._dirty:
                self._dirty.discard((squid_id, start))
                self._ready[squid_id, start] = computed
        for name in FEATURE_COLUMNS:
            who.feature_sums[name] = who.feature_sums.get(name, 0.0) + row[name]
        who.feature_windows += 1
        self._fold_events(who, who.recent.pop(start), start, new_window=True)
        who.rows.pop(start, None)
        who.folded_upto = start
        horizon = start - _PEER_COUNTS_KEPT * self.size_ms
        for old in [w for w in who.counts if w < horizon]:
            del who.counts[old]

    def _fold_events(self, who: _Identity, events: Sequence[LiveEvent], start: int, *, new_window: bool) -> None:
        who.events += len(events)
        if new_window:
            who.windows += 1
            who.slot_windows[_slot(start)] += 1
        who.slot_events[_slot(start)] += len(events)
        for event in events:
            who.hours[(event.occurred_at_ms // _HOUR_MS) % 24] += 1
            who.refs.add(event.ref)
            if event.country is not None:
                who.countries.add(event.country)
            if event.ip is not None:
                who.ips.add(event.ip)

    def compute(self, squid_id: str, start: int) -> FeatureRow:
        """The features of ``squid_id``'s window starting at ``start`` (a recent window), as of now."""
        who = self._ids[squid_id]
        events = who.recent.get(start, [])
        earlier = [who.recent[w] for w in sorted(who.recent) if w < start]
        count = len(events)
        prior_events = who.events + sum(len(batch) for batch in earlier)
        prior_windows = who.windows + len(earlier)
        slot = _slot(start)
        prior_slot_events = who.slot_events[slot] + sum(
            len(batch) for w, batch in who.recent.items() if w < start and _slot(w) == slot
        )
        prior_slot_windows = who.slot_windows[slot] + sum(1 for w in who.recent if w < start and _slot(w) == slot)

        def seen(attribute: str, value: str | None) -> bool:
            if value is None:
                return True
            if value in getattr(who, attribute):
                return True
            key = {"refs": "ref", "countries": "country", "ips": "ip"}[attribute]
            return any(getattr(e, key) == value for batch in earlier for e in batch)

        hours = [(e.occurred_at_ms // _HOUR_MS) % 24 for e in events]
        off = 0
        if prior_events >= MIN_HISTORY_EVENTS:
            prior_hours = list(who.hours)
            for batch in earlier:
                for e in batch:
                    prior_hours[(e.occurred_at_ms // _HOUR_MS) % 24] += 1
            off = sum(1 for h in hours if prior_hours[h] < USUAL_HOUR_MIN_SHARE * prior_events)
        known_refs: dict[str, bool] = {}
        new_refs = 0
        for e in events:
            if e.ref not in known_refs:
                known_refs[e.ref] = seen("refs", e.ref)
            new_refs += not known_refs[e.ref]
        if prior_slot_windows > 0:
            baseline: float | None = prior_slot_events / prior_slot_windows
        elif prior_windows > 0:
            baseline = prior_events / prior_windows
        else:
            baseline = None
        auth = sorted((e for e in events if e.type in AUTH_TYPES), key=lambda e: (e.occurred_at_ms, e.seq))
        fails = sum(1 for a, b in itertools.pairwise(auth) if a.verdict == "DENY" and b.verdict == "ALLOW")
        countries = {e.country for e in events if e.country is not None}
        ips = {e.ip for e in events if e.ip is not None}
        values = {
            "event_count": float(count),
            "distinct_refs": float(len({e.ref for e in events})),
            "distinct_layers": float(len({e.layer for e in events})),
            "deny_ratio": sum(e.verdict == "DENY" for e in events) / count,
            "warn_ratio": sum(e.verdict == "WARN" for e in events) / count,
            "off_hours_share": off / count,
            "new_ref_share": new_refs / count,
            "rate_vs_baseline": 1.0 if baseline is None else count / baseline,
            "peer_deviation": self._peer_deviation(who, start, count),
            "fail_then_success": float(fails),
            "new_country_count": float(sum(1 for c in countries if not seen("countries", c))),
            "new_ip_count": float(sum(1 for ip in ips if not seen("ips", ip))),
        }
        who.rows[start] = values
        return FeatureRow(squid_id, start, values)

    def _peer_deviation(self, who: _Identity, start: int, count: int) -> float:
        if who.peer_dao is None:
            return 0.0
        members = self._members[who.peer_dao]
        counts = [float(self._ids[m].counts.get(start, 0)) for m in members]
        n = len(members)
        mean = sum(counts) / n
        variance = sum(c * c for c in counts) / n - mean**2
        if n >= 2 and variance > 1e-12:
            return (count - mean) / math.sqrt(variance)
        return 0.0


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
    """Score feature rows with a loaded detector (``analytics.model_store.LoadedDetector``)."""
    if not rows:
        return []
    frame = pl.DataFrame([row.values for row in rows], schema={c: pl.Float64 for c in FEATURE_COLUMNS})
    raw = np.asarray(detector.score(frame), dtype=np.float64)
    conf = confidence(detector, raw)
    threshold = float(detector.alert_threshold)
    return [Scored(row, float(r), float(c), bool(r > threshold)) for row, r, c in zip(rows, raw, conf, strict=True)]


# -- leader election -------------------------------------------------------------------------------------


class _Leadership:
    """The alerting instance's lock: a PostgreSQL session advisory lock, or a flock beside the SQLite file."""

    def __init__(self, engine: Engine, lock_path: Path | None) -> None:
        self._engine = engine
        self._lock_path = lock_path
        self._connection: Connection | None = None
        self._file: IO[bytes] | None = None
        self._guard = threading.Lock()  # the loop's thread acquires while ``stop`` may release
        self._released = False
        self.held = False

    def open(self) -> None:
        """Allow acquiring again after a release (the loop restarts)."""
        with self._guard:
            self._released = False

    def try_acquire(self) -> bool:
        with self._guard:
            if self._released:
                return False  # released by ``stop``: a loop still finishing its round must not take a new lock
            if not self.held:
                self.held = self._flock() if self._engine.dialect.name == "sqlite" else self._advisory()
            return self.held

    def _flock(self) -> bool:
        if self._lock_path is None:
            return True  # an in-memory database: one process only
        import fcntl

        handle = self._lock_path.open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def _advisory(self) -> bool:
        try:
            connection = self._engine.connect()
            got = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _LEADER_LOCK_KEY}).scalar())
            connection.commit()
        except SQLAlchemyError as exc:
            logger.warning("detector leader lock unavailable: %s", exc.__class__.__name__)
            return False
        if not got:
            connection.close()
            return False
        self._connection = connection
        return True

    def release(self) -> None:
        with self._guard:
            self._released = True
            if self._connection is not None:
                with contextlib.suppress(SQLAlchemyError):
                    self._connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LEADER_LOCK_KEY})
                    self._connection.commit()
                self._connection.close()
                self._connection = None
            if self._file is not None:
                self._file.close()  # closing the descriptor drops the flock
                self._file = None
            self.held = False


def _sqlite_lock_path(engine: Engine) -> Path | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database).with_name(Path(database).name + ".detector.lock")


# -- the engine ------------------------------------------------------------------------------------------


class LiveDetection:
    """The live detection engine of one API process (see the module doc).

    ``ledger``: a ``models.ledger.Ledger`` (its engine is read; alerts are appended to it). ``watcher``: an
    ``analytics.model_store.ChampionWatcher`` (None: rules only); ``tracking_uri``: its MLflow store (lets
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
        engine: Engine = ledger.engine
        create_alert_tables(engine)
        self.store = AlertStore(engine, ledger=ledger)
        self._engine = engine
        self._leadership = _Leadership(engine, _sqlite_lock_path(engine))
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
        bound = {"after": after, "upto": 2**62 if upto is None else upto, "limit": limit}
        with self._engine.connect() as connection:
            rows = connection.execute(_TAIL_QUERY, bound).all()
        return [live_event(*row) for row in rows]

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
        candidates = [self._rule_candidate(hit, latest) for hit in hits]
        try:
            candidates += list(self._anomaly_candidates(rows))
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

    def _anomaly_candidates(self, rows: Sequence[FeatureRow]) -> Iterator[AlertCandidate]:
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
        for item in scored:
            if item.past_threshold and item.confidence >= settings.min_confidence:
                yield self._anomaly_candidate(detector, item)

    def _anomaly_candidate(self, detector: Any, item: Scored) -> AlertCandidate:
        settings = self.config.anomaly
        assert self._features is not None
        drivers = explain(
            item.row.values, detector.feature_columns, baseline=self._features.baseline(item.row.squid_id),
            center=getattr(detector.pipeline, "center_", None), scale=getattr(detector.pipeline, "scale_", None),
            top=settings.explain_top,
        )  # fmt: skip
        top = ", ".join(f"{d.feature}={d.value:g} (baseline {d.baseline:.3g})" for d in drivers[:3])
        return AlertCandidate(
            squid_id=item.row.squid_id,
            pattern="anomaly",
            technique=None,
            severity="high" if item.confidence >= settings.high_confidence else "medium",
            score=item.confidence,
            description=f"unusual behaviour in the {self.config.live.window} window from "
            f"{_iso(item.row.window_start_ms)}: {top}",
            explanation={
                "modelVersion": str(detector.version),
                "rawScore": item.raw,
                "threshold": float(detector.alert_threshold),
                "window": self.config.live.window,
                "windowStart": _iso(item.row.window_start_ms),
                "features": [d.to_json() for d in drivers],
            },
            window_start_ms=item.row.window_start_ms,
        )

    def _rule_candidate(self, hit: RuleHit, latest: dict[tuple[str, int], FeatureRow]) -> AlertCandidate:
        assert self._features is not None
        size = self._features.size_ms
        start = hit.occurred_at_ms - hit.occurred_at_ms % size
        explanation: dict[str, Any] = {"rule": hit.rule, "evidence": dict(hit.evidence), "windowStart": _iso(start)}
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
        )


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def rows_from_events(events: Iterable[LiveEvent], window: str) -> list[FeatureRow]:
    """Features of every window of a batch of events with no history (``POST /anomaly/detect``)."""
    features = IncrementalFeatures(window, keep_windows=1_000_000)
    for event in sorted(events, key=lambda e: (e.occurred_at_ms, e.seq)):
        features.add(event)
    return features.take_ready()
