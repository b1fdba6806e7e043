"""The exact OpenAPI document: Litestar's generated one, completed from what the service really answers.

Litestar documents a handler's success and, for a handler with parameters, its own validation error. This module
adds, in one place, what the generation cannot see: every error status of each operation (``answers``) with the
error envelope ``api.errors.ErrorResponse`` as the component ``ErrorResponse``; the request bodies that routes
decode themselves (``AuditEventRequest``, ``RiskScoreRequest``) as components; ``security: []`` on public routes;
plain component names (Litestar names ``Envelope[AuditEventCreated]`` ``Envelope_api.schemas.AuditEventCreated_``:
here it is the upstream ``AuditEventResponse``); the upstream's path parameter names (``/audit/{id}``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec
from litestar import Litestar
from litestar.routes import HTTPRoute

from analytics.importers import FORMATS as IMPORT_FORMATS
from analytics.risk import CONTEXT_KEYS, LEVELS
from api.controllers.risk import MAX_LIMIT, RiskScoreRequest
from api.errors import ErrorResponse
from api.openapi.answers import ERROR_DESCRIPTIONS, ERROR_HEADERS, SPECIFIC, Route, Specific, error_statuses
from api.schemas import NOT_BLANK
from api.security import PUBLIC_OPT_KEY
from models.ledger import MAX_SEQ
from models.wire_events import AuditEventRequest

COMPONENTS = "#/components/schemas/"
ERROR_REF = {"$ref": f"{COMPONENTS}ErrorResponse"}

_ENVELOPE = re.compile(r"^Envelope_(?:[\w.]+\.)?(?P<data>\w+)_$")
ENVELOPE_NAMES: Mapping[str, str] = {
    # the upstream's names, where it names the same answer
    "AuditEventCreated": "AuditEventResponse",
    "AuditEventPage": "AuditEventSearchResponse",
    "RiskScore": "RiskScoreResponse",
    "DetectResult": "AnomalyDetectionResponse",
    "AlertPage": "SecurityAlertsResponse",
    # ours
    "AuditEvent": "StoredAuditEventResponse",
    "Alert": "SecurityAlertResponse",
}
"""The success envelope's component name by the name of its ``data``'s type; any other is ``<data>Response``."""
RENAMED: Mapping[str, str] = {
    "DetectRequest": "AnomalyDetectionRequest",
    "Envelope_dict_str_typing.Any_": "ReportJobResponse",
    "Envelope_list_dict_str_typing.Any_": "ReportListResponse",
}
"""Other generated names: the upstream's, and the envelopes of untyped data (the compliance routes')."""
PATH_PARAMETERS: Mapping[str, str] = {"event_id": "id", "alert_id": "id", "report_id": "id", "job_id": "id"}
"""Path parameters under the upstream's name (``/audit/{id}``): the server matches by position, not by name."""

_INSTANT = {
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}],
    "description": "ISO 8601 date-time (UTC without an offset) or plain date (its midnight UTC)",
}
_UUID = {"type": "string", "format": "uuid"}
_UUID_TEXT = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_SIZE = {"type": "integer", "minimum": 0, "maximum": MAX_SEQ}
"""A tree size or sequence number: Litestar writes ``le=MAX_SEQ`` as a float, which rounds past 2^63 - 1."""
_WIDTH = r"(?:\.p/(?:[1-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5]))?"
_INDEX = r"(?:x(?:[1-9][0-9]{2}|0[1-9][0-9]|00[1-9])/(?:x[0-9]{3}/)*)?[0-9]{3}" + _WIDTH
"""A tile's index as C2SP tlog-tiles spells it (``x001/234``, ``.p/W`` for a partial tile), canonical only."""
PARAMETERS: Mapping[tuple[str, str], Mapping[str, Any]] = {
    ("*", "startDate"): _INSTANT,
    ("*", "endDate"): _INSTANT,
    ("*", "offset"): {"type": "integer", "minimum": 0, "maximum": 10_000_000, "description": "0 when absent"},
    ("*", "cursor"): {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,200}$", "description": "nextCursor of a page"},
    ("*", "first"): _SIZE,
    ("*", "second"): _SIZE,
    ("*", "treeSize"): {**_SIZE, "minimum": 1},
    ("getInclusionProof", "reference"): {"type": "string", "pattern": rf"^(?:[0-9]{{1,18}}|{_UUID_TEXT})$"},
    ("getAuditEvent", "id"): _UUID,
    ("updateSecurityAlert", "id"): _UUID,
    ("updateSecurityAlertAlias", "id"): _UUID,
    ("getIdentityRiskScore", "identity"): {"type": "string", "minLength": 1, "maxLength": 100, "pattern": NOT_BLANK},
    ("listRiskiestIdentities", "level"): {"enum": list(LEVELS), "default": "low"},
    ("listRiskiestIdentities", "limit"): {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
    ("getTile", "path"): {"type": "string", "pattern": rf"^(?:[0-9]|[1-5][0-9]|6[0-3])/{_INDEX}$"},
    ("getEntryBundle", "path"): {"type": "string", "pattern": rf"^{_INDEX}$"},
    ("importLog", "format"): {"enum": list(IMPORT_FORMATS)},
}
"""Parameters whose handler reads text and checks it itself: what it accepts (by operation, ``*``: any)."""

OCSF_MEDIA_TYPE = "application/x-ndjson"
OCSF_LINES = {"schema": {"type": "string", "description": "`format=ocsf`: one OCSF 1.7 event (or finding) per line"}}
"""The answer of a listing asked with ``format=ocsf``, beside its JSON envelope."""

_REPORT_FORMATS = {
    "application/pdf": {"schema": {"type": "string", "format": "binary"}},
    "text/csv": {"schema": {"type": "string"}},
    "text/html": {"schema": {"type": "string"}},
}
REPORT_OPERATIONS = frozenset({"generateComplianceReport", "getReport"})
_OBJECT = {"type": "object"}
COMPLIANCE_REPORT = {
    "type": "object",
    "description": "A report's summary.json (analytics/compliance/report.py) and where it is recorded",
    "required": ["reportId", "type", "period", "generatedAt", "summary", "violations", "recommendations"],
    "properties": {
        "reportId": {"type": "string"},
        "type": {"enum": ["gdpr", "soc2", "iso27001", "custom"]},
        "organization": {"type": "string"},
        "period": {
            "type": "object",
            "required": ["startDate", "endDate"],
            "properties": {"startDate": {"type": "string"}, "endDate": {"type": "string"}},
        },
        "generatedAt": {"type": "string"},
        "summary": _OBJECT,
        "violations": {"type": "array", "items": _OBJECT},
        "recommendations": {"type": "array", "items": {"type": "string"}},
        "integrity": _OBJECT,
        "activity": _OBJECT,
        "security": _OBJECT,
        "gdpr": {"type": ["object", "null"]},
        "controls": {"type": "array", "items": _OBJECT},
        "reportSha256": {"type": ["string", "null"]},
        "ledgerEvent": {"type": ["object", "null"]},
        "formats": {"type": "array", "items": {"type": "string"}},
    },
}
"""``data`` of a report in JSON: built as a mapping by the report itself, so described here."""


def msgspec_components() -> dict[str, Any]:
    """The bodies that routes decode themselves, and ``ErrorResponse``: the upstream's fields
    (``suggestedActions``, never sent, kept optional) and ours."""
    _, components = msgspec.json.schema_components(
        (AuditEventRequest, RiskScoreRequest, ErrorResponse), ref_template=COMPONENTS + "{name}"
    )
    context_value = {"type": "string", "minLength": 1, "maxLength": 200}
    context = {"type": "object", "properties": {key: context_value for keys in CONTEXT_KEYS.values() for key in keys}}
    components["RiskScoreRequest"]["properties"]["context"]["anyOf"][0] = context
    since_1970 = {"pattern": "^(?:19[7-9][0-9]|[2-9][0-9]{3})-", "description": "not before 1970 (in UTC)"}
    components["AuditEventRequest"]["properties"]["timestamp"]["anyOf"][0] |= since_1970
    error = components["ErrorResponse"]
    error.pop("title", None)
    error["description"] = "Every error answer (api/errors.py)."
    error["properties"]["timestamp"]["format"] = "date-time"
    error["required"] = sorted(error["properties"])  # always sent, ``status`` with its default too
    never_sent = "the upstream's; never sent"
    error["properties"]["suggestedActions"] = {"type": "array", "items": {"type": "string"}, "description": never_sent}
    return components


def exact_document(app: Litestar, generated: Mapping[str, Any]) -> dict[str, Any]:
    """Litestar's ``generated`` document of ``app``, made exact (see the module's docstring)."""
    document = copy.deepcopy(dict(generated))
    schemas: dict[str, Any] = document["components"]["schemas"]
    schemas.update(msgspec_components())  # its IdentityRef, with the request's bounds, is the upstream's
    routes = _routes(app)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                _complete(operation, routes[(path, method.upper())], schemas)
    document["paths"] = {_path_with_upstream_names(path): item for path, item in document["paths"].items()}
    renames = _component_names(schemas)
    document["components"]["schemas"] = {renames.get(name, name): schema for name, schema in schemas.items()}
    for name in renames.values():
        document["components"]["schemas"][name].pop("title", None)
    _rename_references(document, renames)
    return document


def _routes(app: Litestar) -> dict[tuple[str, str], Route]:
    routes: dict[tuple[str, str], Route] = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            signature = handler.parsed_fn_signature.parameters
            kinds = Route(
                public=bool(handler.opt.get(PUBLIC_OPT_KEY)),
                permission=handler.opt.get("permission") is not None,
                takes_input=any(name not in {"self", "request"} for name in signature),
                reads_body="body" in signature or "data" in signature,
                names_a_resource=bool(route.path_parameters),
            )
            for method in handler.http_methods:
                routes[(route.path_format, method)] = kinds
    return routes


def _complete(operation: dict[str, Any], route: Route, schemas: Mapping[str, Any]) -> None:
    operation_id = operation["operationId"]
    responses: dict[str, Any] = operation["responses"]
    if route.public:
        operation["security"] = []
    success = next(iter(responses.values()))
    if not success.get("headers"):
        success.pop("headers", None)
    if operation_id in REPORT_OPERATIONS:
        _report_answers(operation_id, responses)
    own_body = SPECIFIC.get(operation_id, Specific()).own_body
    for status in own_body:
        responses[str(status)] = {**copy.deepcopy(success), "description": ERROR_DESCRIPTIONS[status]}
    for status in error_statuses(operation_id, route):
        if status in own_body:
            continue
        answer: dict[str, Any] = {
            "description": ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": dict(ERROR_REF)}},
        }
        if status in ERROR_HEADERS:
            answer["headers"] = copy.deepcopy(dict(ERROR_HEADERS[status]))
        responses[str(status)] = answer
    operation["responses"] = dict(sorted(responses.items()))
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            parameter["name"] = PATH_PARAMETERS.get(parameter["name"], parameter["name"])
        _exact_parameter(operation_id, parameter)
        if parameter["name"] == "format" and "ocsf" in parameter["schema"].get("enum", []):
            success.setdefault("content", {})[OCSF_MEDIA_TYPE] = copy.deepcopy(OCSF_LINES)


def _exact_parameter(operation_id: str, parameter: dict[str, Any]) -> None:
    """A parameter never is ``null`` (absent is its default); text checked by the handler gets its rules."""
    schema = dict(parameter["schema"])
    alternatives = [item for item in schema.get("oneOf", []) if item.get("type") != "null"]
    if len(alternatives) == 1:
        schema = {**alternatives[0], **{key: value for key, value in schema.items() if key != "oneOf"}}
    if isinstance(schema.get("type"), list):
        types = [kind for kind in schema["type"] if kind != "null"]
        schema["type"] = types[0] if len(types) == 1 else types
    if "enum" in schema:
        schema["enum"] = [value for value in schema["enum"] if value is not None]
    name = parameter["name"]
    exact = PARAMETERS.get((operation_id, name)) or PARAMETERS.get(("*", name))
    parameter["schema"] = dict(exact) if exact is not None else schema


def _report_answers(operation_id: str, responses: dict[str, Any]) -> None:
    """A report is JSON in the envelope, or the PDF, CSV or HTML file; ``GET /compliance/report`` may answer 202
    with the job generating it."""
    responses["200"] = {
        "description": "The report: JSON in the envelope (`format=json`), or the file (`pdf`, `csv`, `html`)",
        "content": {"application/json": {"schema": {"$ref": f"{COMPONENTS}ComplianceReportResponse"}}}
        | _REPORT_FORMATS,
    }
    if operation_id == "generateComplianceReport":
        responses["202"] = {
            "description": "The report is being generated: poll the job at `Location`",
            "headers": {"Location": {"schema": {"type": "string"}}, "Retry-After": {"schema": {"type": "integer"}}},
            "content": {"application/json": {"schema": {"$ref": f"{COMPONENTS}ReportJobResponse"}}},
        }


def _path_with_upstream_names(path: str) -> str:
    for name, upstream in PATH_PARAMETERS.items():
        path = path.replace(f"{{{name}}}", f"{{{upstream}}}")
    return path


def _component_names(schemas: dict[str, Any]) -> dict[str, str]:
    """Plain names for Litestar's generated ones; ``ComplianceReportResponse`` added (a report's JSON in the
    envelope)."""
    renames = dict(RENAMED)
    for name in schemas:
        if name not in renames and (match := _ENVELOPE.match(name)):
            data = match["data"]
            renames[name] = ENVELOPE_NAMES.get(data, f"{data}Response")
    job = next(name for name, new in renames.items() if new == "ReportJobResponse")
    report = copy.deepcopy(schemas[job])
    report["properties"]["data"] = {"$ref": f"{COMPONENTS}ComplianceReport"}
    schemas["ComplianceReportResponse"] = report
    schemas["ComplianceReport"] = COMPLIANCE_REPORT
    return renames


def _rename_references(node: Any, renames: Mapping[str, str]) -> None:
    for mapping in _mappings(node):
        reference = mapping.get("$ref")
        if isinstance(reference, str) and reference.startswith(COMPONENTS):
            name = reference.removeprefix(COMPONENTS)
            mapping["$ref"] = COMPONENTS + renames.get(name, name)


def _mappings(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _mappings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _mappings(item)
