"""Prometheus metrics of the API, and the ASGI wrapper that measures every request.

The wrapper sits outside Litestar's exception handling, so it sees the status code actually sent,
including a 401 or 429 raised inside a middleware and the 404/405 of unknown routes (Litestar's own
Prometheus middleware records those as 200). Routes are labelled by their template (``/audit/{id}``),
unmatched paths as ``<unmatched>``, so label sets stay bounded.

With several worker processes, ``PROMETHEUS_MULTIPROC_DIR`` must be set before the workers start
(``qerberos serve --workers N`` does it); ``/metrics`` then aggregates every worker's values with
``MultiProcessCollector``, and reports the CPU and memory of the whole worker group.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psutil
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from analytics.taxonomy import Taxonomy
from models.categories import CategoryStore
from models.cosignatures import CosignatureStore
from models.ledger import Ledger
from models.records import AppendResult
from qerberos.logging import reset_request_id, set_request_id

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("qerberos.access")

# Fine around the runbook's 500 ms alert so p50/p95/p99 can be read below, at and past it.
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.75,
    1.0,
    1.5,
    2.5,
    5.0,
    10.0,
)
UNMATCHED_ROUTE = "<unmatched>"
_MAX_LAYER_LABELS = 64

HTTP_REQUESTS = Counter(
    "qerberos_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "qerberos_http_request_duration_seconds",
    "Time from receiving a request to sending its answer.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
EVENTS_INGESTED = Counter(
    "qerberos_events_ingested_total", "Audit events newly appended to the ledger.", ["layer", "verdict"]
)
LEDGER_SIZE = Gauge("qerberos_ledger_size", "Events in the ledger.", multiprocess_mode="mostrecent")
CHECKPOINT_AGE = Gauge(
    "qerberos_checkpoint_age_seconds", "Age of the latest signed checkpoint.", multiprocess_mode="mostrecent"
)
UNSIGNED_AGE = Gauge(
    "qerberos_unsigned_entries_age_seconds",
    "How long the oldest entry no signed checkpoint covers has waited; 0 when the newest checkpoint covers all.",
    multiprocess_mode="mostrecent",
)

CHECKPOINT_REFUSALS = Counter(
    "qerberos_checkpoint_refusals_total",
    "Checkpoints the signer refused: the tree was not consistent with the last one it signed.",
)
EVENTS_BY_CLASS = Gauge(
    "qerberos_events_by_class",
    "Events of each taxonomy class (OCSF class; 'other': no rule of config/taxonomy.toml recognised them), as the "
    "stored categories count them.",
    ["class_uid", "class_name"],
    multiprocess_mode="mostrecent",
)
EVENTS_UNCLASSIFIED = Gauge(
    "qerberos_events_unclassified",
    "Events whose category is not stored yet (live detection stores them when idle; qerberos taxonomy apply).",
    multiprocess_mode="mostrecent",
)
WITNESS_LAG = Gauge(
    "qerberos_witness_lag_seconds",
    "How long the oldest checkpoint a witness has not cosigned has waited; 0 when it cosigned the newest.",
    ["witness"],
    multiprocess_mode="mostrecent",
)


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerReadings:
    size: int
    checkpoint_age_seconds: float | None  # None before the first checkpoint
    unsigned_age_seconds: float


def observe_ledger(ledger: Ledger) -> LedgerReadings:
    """Read the ledger's size and checkpoint ages, set their gauges, and return them (``/metrics`` and
    ``/health/detailed`` both read them)."""
    readings = LedgerReadings(ledger.size(), ledger.checkpoint_age_seconds(), ledger.unsigned_age_seconds())
    LEDGER_SIZE.set(readings.size)
    if readings.checkpoint_age_seconds is not None:
        CHECKPOINT_AGE.set(readings.checkpoint_age_seconds)
    UNSIGNED_AGE.set(readings.unsigned_age_seconds)
    return readings


def observe_categories(ledger: Ledger, taxonomy: Taxonomy, size: int) -> None:
    """Set the events per class and the events not yet classified from the stored categories (``/metrics``);
    categories of another taxonomy than ``taxonomy`` count as not classified."""
    store = CategoryStore(ledger.engine)
    state = store.state()
    current = state.digest == taxonomy.digest
    counts = store.class_counts() if current else {}
    for ocsf_class in taxonomy.classes.values():
        EVENTS_BY_CLASS.labels(str(ocsf_class.uid), ocsf_class.key).set(counts.get(ocsf_class.uid, 0))
    EVENTS_UNCLASSIFIED.set(max(0, size - state.classified_upto) if current else size)


def observe_witnesses(ledger: Ledger, witnesses: Sequence[str]) -> None:
    """Set each witness's lag from the cosignatures the ledger's database holds (``/metrics``)."""
    for name, lag in CosignatureStore(ledger.engine).lag_seconds(witnesses).items():
        WITNESS_LAG.labels(name).set(lag)


DEPENDENCY_UP = Gauge(
    "qerberos_dependency_up",
    "1 when the dependency answered its last check.",
    ["dependency"],
    multiprocess_mode="mostrecent",
)
DEPENDENCY_LATENCY = Gauge(
    "qerberos_dependency_latency_seconds",
    "Latency of the dependency's last check.",
    ["dependency"],
    multiprocess_mode="mostrecent",
)
LAST_INGEST = Gauge(
    "qerberos_last_ingest_timestamp_seconds",
    "When an event was last appended (Unix time).",
    multiprocess_mode="max",
)

_layers_seen: set[str] = set()
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def record_ingested(results: Iterable[AppendResult]) -> None:
    """Count newly created events (not idempotent replays) by layer and verdict.

    Counted per label pair first, so a batch of 1,000 costs one ``labels().inc(n)`` per pair, not 1,000.
    """
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    newest: dt.datetime | None = None
    for result in results:
        if result.created:
            record = result.record
            counts[record.layer, record.verdict] += 1
            if newest is None or record.received_at > newest:
                newest = record.received_at
    for (layer, verdict), count in counts.items():
        EVENTS_INGESTED.labels(_layer_label(layer), verdict).inc(count)
    if newest is not None:
        LAST_INGEST.set(newest.timestamp())


def _layer_label(layer: str) -> str:
    """Layers are free text: the first few distinct ones get a label of their own, the rest ``other``."""
    if layer in _layers_seen:
        return layer
    if len(_layers_seen) < _MAX_LAYER_LABELS:
        _layers_seen.add(layer)
        return layer
    return "other"


def record_dependency(name: str, up: bool, latency_seconds: float) -> None:
    DEPENDENCY_UP.labels(name).set(1 if up else 0)
    DEPENDENCY_LATENCY.labels(name).set(latency_seconds)


def is_multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def render_metrics() -> tuple[bytes, str]:
    """The exposition text and its content type, aggregated over workers in multiprocess mode."""
    if is_multiprocess():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(_WorkerGroupCollector())
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def mark_worker_dead() -> None:
    """Drop this worker's live gauges (called at shutdown in multiprocess mode)."""
    if is_multiprocess():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class _WorkerGroupCollector(Collector):
    """``process_*`` for the worker group: this worker, its siblings (same parent) and the parent."""

    def collect(self) -> Iterator[Any]:
        me = psutil.Process()
        parent = me.parent()
        group = [parent, *parent.children()] if parent is not None else [me]
        rss = 0
        cpu = 0.0
        for process in group:
            try:
                with process.oneshot():
                    rss += process.memory_info().rss
                    times = process.cpu_times()
                    cpu += times.user + times.system
            except psutil.Error:
                continue
        yield GaugeMetricFamily("process_resident_memory_bytes", "Resident memory of the worker group.", rss)
        yield CounterMetricFamily("process_cpu_seconds", "CPU time of the worker group.", cpu)
        yield GaugeMetricFamily("process_workers", "Processes in the worker group.", len(group))


class InstrumentedASGI:
    """Outermost wrapper: request id, latency and status metrics, one access log line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = set_request_id(request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            method = str(scope.get("method", "?"))
            route = scope.get("path_template") if scope.get("route_handler") is not None else None
            route = route or UNMATCHED_ROUTE
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_DURATION.labels(method, route).observe(elapsed)
            access_logger.info(
                "%s %s %d %.1f ms",
                method,
                route,
                status,
                elapsed * 1000,
                extra={"method": method, "route": route, "status": status, "durationMs": round(elapsed * 1000, 2)},
            )
            reset_request_id(token)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _REQUEST_ID.match(text) else None
    return None
