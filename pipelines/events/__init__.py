"""Published events: the ledger's records as upstream events wrapped as CloudEvents, published at least once to
NATS JetStream from a durable cursor (``publisher``), and their payloads (``cloud_events``). The channels are
described by ``docs/asyncapi.yaml``."""

from pipelines.events.cloud_events import (
    ALERT_CREATED_EVENT,
    AUDIT_LOGGED_EVENT,
    CONTENT_TYPE,
    EVENT_TYPES,
    RISK_SCORED_EVENT,
    CloudEvent,
    cloud_events,
    event_schema,
)
from pipelines.events.publisher import EventPublisher, observe_publish_lag

__all__ = [
    "ALERT_CREATED_EVENT",
    "AUDIT_LOGGED_EVENT",
    "CONTENT_TYPE",
    "EVENT_TYPES",
    "RISK_SCORED_EVENT",
    "CloudEvent",
    "EventPublisher",
    "cloud_events",
    "event_schema",
    "observe_publish_lag",
]
