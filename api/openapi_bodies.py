"""OpenAPI request bodies for routes that read their raw body themselves.

``POST /audit`` and ``/audit/batch`` decode with ``models.wire_events`` (so the CLI and the API validate
identically), which means Litestar does not see a ``data`` parameter to document. These Operation
classes refer to the component ``AuditEventRequest``, which ``api.openapi.document`` derives with msgspec from
the decoding type itself.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"})
BATCH_LIMIT = 10_000


def schema_ref(name: str) -> dict[str, Any]:
    """A reference to a component that ``api.openapi.document`` registers from the decoding type of that name."""
    return {"$ref": f"#/components/schemas/{name}"}


EVENT_SCHEMA = schema_ref("AuditEventRequest")


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
