"""Published events against a real NATS JetStream: every event of a 10,000-event ingest reaches a subscriber
exactly once after deduplication by event id, across a broker crash and a publisher (qerberos) crash, with
payloads valid against their schemas and every message a valid CloudEvent."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import nats
import pytest
from cloudevents.core.formats.json import JSONFormat
from nats.js.api import ConsumerConfig, DeliverPolicy

from analytics.risk.scoring import Factor, RiskAssessment
from models.alerts import AlertCandidate
from models.ledger import Ledger
from models.publish_cursor import PublishCursor
from models.records import Actor, NewEvent
from models.risk_store import LevelChange
from models.schema import prepare
from pipelines.alert_service import AlertService
from pipelines.events import ALERT_CREATED_EVENT, AUDIT_LOGGED_EVENT, RISK_SCORED_EVENT, event_schema
from pipelines.risk.level_events import level_changed_event
from qerberos.settings import Settings
from tests.conftest import free_port
from tests.integration.events.brokers import PrivateNats

ROOT = Path(__file__).resolve().parents[3]
STREAM = "QERBEROS_TEST_EVENTS"
pytestmark = pytest.mark.slow


def _events(count: int) -> list[NewEvent]:
    return [
        NewEvent(
            type="access", ref=f"file:{uuid.uuid4()}", actor=Actor(f"did:squid:user-{index % 50}"),
            layer="qdrive", verdict="ALLOW", source="local:test",
        )
        for index in range(count)
    ]  # fmt: skip


def _append(ledger: Ledger, count: int) -> None:
    for start in range(0, count, 1000):
        ledger.append(_events(min(1000, count - start)))


def _risk_change() -> NewEvent:
    assessment = RiskAssessment(
        identity="did:squid:user-1", score=0.81, level="critical", factors=(Factor("alerts", 1.0, 0.81),),
        as_of_ms=int(time.time() * 1000), expires_at_ms=int(time.time() * 1000) + 300_000, operation=None,
        model_version="1.0.0",
    )  # fmt: skip
    return level_changed_event(assessment, LevelChange("did:squid:user-1", "low", 0.1, "critical", 0.81))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateNats]:
    server = PrivateNats(tmp_path / "nats")
    server.start()
    yield server
    server.kill()


class Publisher:
    """``qerberos publish`` as its own process, killable like a crash."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-c", "import cli; cli.main()", "publish"]
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        self._process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


def _wait_published(ledger: Ledger, timeout: float = 120) -> None:
    cursor, last = PublishCursor(ledger.engine), ledger.size() - 1
    deadline = time.monotonic() + timeout
    while cursor.position() < last:
        assert time.monotonic() < deadline, f"published up to {cursor.position()} of {last}"
        time.sleep(0.2)


async def _received(url: str) -> list[bytes]:
    """Every message of the stream, read from its start by a consumer of the test's own."""
    connection = await nats.connect(url)
    try:
        stream = connection.jetstream()
        config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL, max_ack_pending=-1)
        subscription = await stream.pull_subscribe(">", durable="test-reader", stream=STREAM, config=config)
        messages: list[bytes] = []
        while True:
            try:
                batch = await subscription.fetch(5000, timeout=2)
            except TimeoutError:  # nats.errors.TimeoutError, or asyncio's when the deadline passed first
                return messages
            for message in batch:
                messages.append(message.data)
                await message.ack()
    finally:
        await connection.close()


def test_every_event_arrives_exactly_once_after_dedup_across_broker_and_publisher_crashes(
    sqlite_settings: Settings, broker: PrivateNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QERBEROS_EVENTS_URL", broker.url)
    monkeypatch.setenv("QERBEROS_EVENTS_STREAM", STREAM)
    monkeypatch.setenv("QERBEROS_PUBLISHER_METRICS_PORT", str(free_port()))
    publisher = Publisher()
    with prepare(sqlite_settings) as ledger:
        publisher.start()
        try:
            _append(ledger, 3000)
            AlertService(ledger.engine, ledger).raise_alert(
                AlertCandidate("did:squid:user-7", "brute_force", "T1110", "high", 0.9, "12 failed logins", {})
            )
            ledger.append([_risk_change()])
            broker.kill()  # the broker crashes while the publisher works
            _append(ledger, 3000)
            time.sleep(1.5)
            broker.start()
            _append(ledger, 2000)
            time.sleep(0.5)
            publisher.kill()  # qerberos crashes: its cursor stays where the last acknowledged round put it
            _append(ledger, 2000)
            publisher.start()
            _wait_published(ledger)
            records = {str(record.id) for record in ledger.records_after(-1, 20_000)}
        finally:
            publisher.kill()

    messages = asyncio.run(_received(broker.url))
    unique = {}
    reader = JSONFormat()
    for data in messages:
        event = reader.read(None, data)  # a valid CloudEvent, or this raises
        unique.setdefault(event.get_id(), event)
    by_type: dict[str, list[dict[str, object]]] = {}
    for event in unique.values():
        by_type.setdefault(event.get_type(), []).append(event.get_data())  # type: ignore[arg-type]
    logged = by_type[AUDIT_LOGGED_EVENT]
    assert (10_002, records) == (len(records), {str(payload["auditEventId"]) for payload in logged})
    assert (len(records), 1, 1) == (len(logged), len(by_type[ALERT_CREATED_EVENT]), len(by_type[RISK_SCORED_EVENT]))
    for event_type, payloads in by_type.items():
        validator = jsonschema.Draft7Validator(event_schema(event_type), format_checker=jsonschema.FormatChecker())
        assert [] == [error.message for payload in payloads for error in validator.iter_errors(payload)][:5]
