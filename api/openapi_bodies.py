"""OpenAPI request bodies for routes that read their raw body themselves.

``POST /audit`` and ``/audit/batch`` decode with ``models.wire_events`` (so the CLI and the API validate
identically), which means Litestar does not see a ``data`` parameter to document. These Operation
classes put the same schema msgspec derives from ``AuditEventRequest`` into the generated OpenAPI.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody

from models.wire_events import AuditEventRequest

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"})
BATCH_LIMIT = 10_000


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """Resolve msgspec's local ``$defs`` references (the generated components cannot be extended)."""
    definitions: dict[str, Any] = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items() if key != "$defs"}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


EVENT_SCHEMA = _inline(msgspec.json.schema(AuditEventRequest))


@dataclasses.dataclass
class AuditEventBody(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="One audit event (the upstream AuditEventRequest, plus optional id and timestamp).",
            content={"application/json": OpenAPIMediaType(schema=EVENT_SCHEMA)},  # type: ignore[arg-type]
        )


@dataclasses.dataclass
class AuditBatchBody(Operation):
    def __post_init__(self) -> None:
        array = {"type": "array", "items": EVENT_SCHEMA, "minItems": 1, "maxItems": BATCH_LIMIT}
        lines = {"type": "string", "description": "One AuditEventRequest JSON object per line."}
        self.request_body = RequestBody(
            required=True,
            description=f"Up to {BATCH_LIMIT} audit events: a JSON array, or NDJSON by Content-Type.",
            content={
                "application/json": OpenAPIMediaType(schema=array),  # type: ignore[arg-type]
                "application/x-ndjson": OpenAPIMediaType(schema=lines),  # type: ignore[arg-type]
            },
        )


@dataclasses.dataclass
class ImportBody(Operation):
    def __post_init__(self) -> None:
        text = {"type": "string", "description": "The log as its source writes it."}
        self.request_body = RequestBody(
            required=True,
            description=(
                f"Up to {BATCH_LIMIT} records of the format in the path: a CloudTrail log file or records one per "
                "line, a Graph page or lines of Entra ID sign-ins, Office 365 management activity records, OpenSSH "
                "syslog or journal lines, OCSF events."
            ),
            content={
                "application/json": OpenAPIMediaType(schema=text),  # type: ignore[arg-type]
                "application/x-ndjson": OpenAPIMediaType(schema=text),  # type: ignore[arg-type]
                "text/plain": OpenAPIMediaType(schema=text),  # type: ignore[arg-type]
            },
        )
