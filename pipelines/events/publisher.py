"""The event publisher: the ledger's records, past a durable cursor, to NATS JetStream, at least once.

How it runs
    ``EventPublisher.run()`` (an asyncio task: embedded in ``qerberos serve``, or ``qerberos publish`` on its
    own) connects to ``QERBEROS_EVENTS_URL``, makes sure the stream ``QERBEROS_EVENTS_STREAM`` (subjects
    ``q.qerberos.>``, file storage) exists, then in rounds reads up to ``batch_size`` records past its cursor
    (``models.publish_cursor``), publishes their CloudEvents (``pipelines.events.cloud_events``) on the subject
    named by each event's type, waits for every acknowledgement, and only then advances the cursor (while it
    waits, it reads and encodes the next round, which it sends once the cursor moved). Only the
    instance holding the publisher lock (``models.detector_lock.LeaderLock``, its own key) publishes; the
    others wait to take over.

Failure
    A broker that is down or restarting, a lost connection or a timeout ends the round without moving the
    cursor: the next round publishes the same records again, with the same event ids (at least once; the
    JetStream duplicate window and the consumers' deduplication by id absorb the repeats). A process that dies
    leaves the cursor where the last acknowledged round put it.

Metrics
    ``qerberos_events_published_total{type}``, ``qerberos_events_publish_errors_total``, and the lag, which
    the publisher sets after each round and the API's ``/metrics`` reads from the database
    (``observe_publish_lag``):
    ``qerberos_events_publish_lag_events`` and ``qerberos_events_publish_lag_seconds`` (how long the oldest
    unpublished entry has waited; 0 when none waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from typing import Any

import anyio.to_thread
from prometheus_client import Counter, Gauge

from models.detector_lock import LeaderLock
from models.ledger import Ledger
from models.publish_cursor import PublishCursor
from pipelines.events.cloud_events import CONTENT_TYPE, CloudEvent, cloud_events, encode

__all__ = ["PUBLISHER_LOCK_KEY", "STREAM_SUBJECTS", "EventPublisher", "observe_publish_lag"]

logger = logging.getLogger(__name__)

PUBLISHER_LOCK_KEY = 0x71_70_75_62  # "qpub": the advisory lock of the publishing instance
STREAM_SUBJECTS = ("q.qerberos.>",)
_DUPLICATE_WINDOW_SECONDS = 120.0

PUBLISHED = Counter("qerberos_events_published_total", "Events the broker acknowledged, by type.", ["type"])
PUBLISH_ERRORS = Counter("qerberos_events_publish_errors_total", "Publishing rounds that failed (and will retry).")
LAG_EVENTS = Gauge(
    "qerberos_events_publish_lag_events", "Ledger entries not yet published.", multiprocess_mode="mostrecent"
)
LAG_SECONDS = Gauge(
    "qerberos_events_publish_lag_seconds",
    "How long the oldest ledger entry not yet published has waited; 0 when every entry is published.",
    multiprocess_mode="mostrecent",
)


def observe_publish_lag(cursor: PublishCursor) -> None:
    """Set the lag gauges from the database (``/metrics``)."""
    lag = cursor.lag()
    LAG_EVENTS.set(lag.behind)
    waited = 0.0 if lag.oldest_received_at_ms is None else time.time() - lag.oldest_received_at_ms / 1000
    LAG_SECONDS.set(max(0.0, waited))


class EventPublisher:
    """Publishes the ledger's records past its cursor to the JetStream ``stream`` at ``url``."""

    def __init__(
        self,
        ledger: Ledger,
        url: str,
        *,
        stream: str,
        batch_size: int = 2000,
        poll_seconds: float = 0.1,
        retry_seconds: float = 1.0,
        ack_timeout: float = 10.0,
    ) -> None:
        self._ledger = ledger
        self._url = url
        self._stream = stream
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._retry_seconds = retry_seconds
        self._ack_timeout = ack_timeout
        self._cursor = PublishCursor(ledger.engine)
        self._lock = LeaderLock(ledger.engine, key=PUBLISHER_LOCK_KEY, name="publisher")
        self._source = f"//{ledger.origin}"

    @property
    def cursor(self) -> PublishCursor:
        return self._cursor

    async def run(self) -> None:
        """Publish until cancelled; every failure is logged and retried from the stored cursor."""
        self._lock.open()
        try:
            while True:
                if not await anyio.to_thread.run_sync(self._lock.try_acquire):
                    await asyncio.sleep(self._retry_seconds)
                    continue
                try:
                    await self._publish_connected()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a broker outage, a lost database: the next attempt starts over
                    PUBLISH_ERRORS.inc()
                    with contextlib.suppress(Exception):  # the lag, as far as the database can still tell
                        await anyio.to_thread.run_sync(observe_publish_lag, self._cursor)
                    logger.warning("event publishing interrupted (%s: %s); retrying", type(exc).__name__, exc)
                    await asyncio.sleep(self._retry_seconds)
        finally:
            await anyio.to_thread.run_sync(self._lock.release)

    async def _publish_connected(self) -> None:
        import nats
        from nats.js.api import StorageType, StreamConfig
        from nats.js.errors import NotFoundError

        connection = await nats.connect(
            self._url,
            connect_timeout=2,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            name="qerberos-publisher",
        )
        try:
            stream = connection.jetstream(timeout=self._ack_timeout)
            try:
                await stream.stream_info(self._stream)
            except NotFoundError:
                config = StreamConfig(
                    name=self._stream,
                    subjects=list(STREAM_SUBJECTS),
                    storage=StorageType.FILE,
                    duplicate_window=_DUPLICATE_WINDOW_SECONDS,
                )
                await stream.add_stream(config)
            position = await anyio.to_thread.run_sync(self._cursor.position)
            pending: _Round | None = None  # published, its acknowledgements awaited while the next round is read
            while True:
                read_from = position if pending is None else pending.last_seq
                batch = await anyio.to_thread.run_sync(self._read, read_from)
                if pending is not None:
                    await self._acknowledged(pending)
                    position, pending = pending.last_seq, None
                if batch is None:
                    LAG_EVENTS.set(0)
                    LAG_SECONDS.set(0)
                    await asyncio.sleep(self._poll_seconds)
                    continue
                pending = await self._publish(stream, *batch)
        finally:
            with contextlib.suppress(Exception):
                await connection.close()

    def _read(self, after: int) -> tuple[int, list[CloudEvent], list[bytes]] | None:
        """The events of the records past ``after`` (a thread's work: the read, building and encoding), with the
        last record's sequence number; None when there is none."""
        records = self._ledger.records_after(after, self._batch_size)
        if not records:
            return None
        events = [event for record in records for event in cloud_events(record, self._source)]
        return records[-1].seq, events, [encode(event) for event in events]

    async def _publish(self, stream: Any, last_seq: int, events: list[CloudEvent], bodies: list[bytes]) -> _Round:
        """Send every event of a round; their acknowledgements are awaited by ``_acknowledged``."""
        futures = [
            await stream.publish_async(
                event.type, body, headers={"Nats-Msg-Id": event.id, "Content-Type": CONTENT_TYPE}
            )
            for event, body in zip(events, bodies, strict=True)
        ]
        return _Round(last_seq, events, futures)

    async def _acknowledged(self, round_: _Round) -> None:
        """Wait for every acknowledgement of ``round_``, then move the cursor past it."""
        await asyncio.wait_for(asyncio.gather(*round_.futures), self._ack_timeout)
        for event in round_.events:
            PUBLISHED.labels(event.type).inc()
        await anyio.to_thread.run_sync(self._cursor.advance, round_.last_seq)
        await anyio.to_thread.run_sync(observe_publish_lag, self._cursor)


@dataclasses.dataclass(frozen=True, slots=True)
class _Round:
    """Events sent to the broker: the last record's sequence number, the events, their acknowledgements."""

    last_seq: int
    events: list[CloudEvent]
    futures: list[asyncio.Future[Any]]
