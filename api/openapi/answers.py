"""What each operation may answer besides its success: the one table the OpenAPI document is made exact from.

Most answers follow from what a route is (``error_statuses``): every route may fail with 500; a route behind
authentication answers 401 and 429 (the rate limit) and 503 (sQuid or Qonsent unreachable, the ledger's database
down); a route naming a permission answers 403; one with parameters or a body answers 400; one that reads a body
answers 413; one with path parameters answers 404 (they name nothing, or their text is not routed). ``SPECIFIC``
adds what only some routes answer (409, 415, ...), by ``operationId``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

ERROR_DESCRIPTIONS: Mapping[int, str] = {
    400: "Invalid request: `details` names every failing field or parameter (VALIDATION_ERROR)",
    401: "No credentials, or credentials that do not verify (SQUID_IDENTITY_MISSING, SIGNATURE_INVALID, ...)",
    403: "The caller lacks the route's permission (QONSENT_DENIED)",
    404: "Nothing by that id (NOT_FOUND)",
    409: "The id is taken by another event (CONFLICT)",
    413: "The body, its details or the batch is too large (PAYLOAD_TOO_LARGE)",
    415: "The body's Content-Type is not one this route reads (UNSUPPORTED_MEDIA_TYPE)",
    429: "Too many requests or failed authentications: retry after `Retry-After` seconds (RATE_LIMIT_EXCEEDED)",
    500: "A bug, answered generically and logged with the requestId (INTERNAL_ERROR)",
    503: "A dependency is unavailable: sQuid, Qonsent, the ledger's database or a detector (DEPENDENCY_UNAVAILABLE)",
}

RETRY_AFTER = {
    "description": "Seconds to wait before retrying",
    "schema": {"type": "integer", "minimum": 1},
}
WWW_AUTHENTICATE = {
    "description": "The schemes this service accepts (RFC 9110 section 11.6.1)",
    "schema": {"type": "string"},
}
ERROR_HEADERS: Mapping[int, Mapping[str, object]] = {
    401: {"WWW-Authenticate": WWW_AUTHENTICATE},
    429: {"Retry-After": RETRY_AFTER},
}


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """What the document needs to know of a route handler (from its ``opt`` and signature)."""

    public: bool
    permission: bool
    takes_input: bool
    reads_body: bool
    names_a_resource: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Specific:
    """Answers of one operation beyond those its kind implies. ``errors``: statuses answered with the error
    envelope; ``own_body``: statuses answered with the success response's own schema (``/health``'s 503)."""

    errors: tuple[int, ...] = ()
    own_body: tuple[int, ...] = ()


SPECIFIC: Mapping[str, Specific] = {
    "logAuditEvent": Specific(errors=(409, 415)),
    "logAuditEventBatch": Specific(errors=(409, 415)),
    "getAuditEvent": Specific(errors=(404,)),
    "getInclusionProof": Specific(errors=(404,)),
    "getPublicCheckpoint": Specific(errors=(404, 503)),
    "getTile": Specific(errors=(400, 404, 503)),
    "getEntryBundle": Specific(errors=(404,)),
    "getHealth": Specific(own_body=(503,)),
    "getHealthDetailed": Specific(own_body=(503,)),
    "getReadiness": Specific(own_body=(503,)),
    "updateSecurityAlert": Specific(errors=(404, 409)),
    "updateSecurityAlertAlias": Specific(errors=(404, 409)),
    "getReport": Specific(errors=(404,)),
    "getReportJob": Specific(errors=(404,)),
}


def error_statuses(operation_id: str, route: Route) -> list[int]:
    """The statuses this operation answers with the error envelope, in order."""
    statuses = {500, *SPECIFIC.get(operation_id, Specific()).errors}
    if not route.public:
        statuses |= {401, 429, 503}
    if route.permission:
        statuses.add(403)
    if route.takes_input:
        statuses.add(400)
    if route.reads_body:
        statuses.add(413)
    if route.names_a_resource:
        statuses.add(404)
    return sorted(statuses)
