"""The one place where exceptions become HTTP responses.

Every error answer is ``{status: "error", code, message, details, requestId, retryable, timestamp}``.
Domain errors (``qerberos.errors``) and Litestar's own exceptions (validation, malformed bodies, unknown
routes and methods, oversized bodies, rate limits) are mapped here. Anything else is a 500 answered
generically and logged with its request id; no answer ever carries a stack trace.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, Literal

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

from api.envelope import iso_timestamp
from models import witness
from qerberos import errors
from qerberos.logging import current_request_id

logger = logging.getLogger(__name__)


class ErrorResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The contract's ``ErrorResponse`` (``suggestedActions`` is never sent)."""

    status: Literal["error"] = "error"
    code: str
    message: str
    details: dict[str, Any]
    requestId: str
    retryable: bool
    timestamp: str


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """What an exception means for the client."""

    status_code: int
    code: str
    message: str
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    retryable: bool = False
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


_DOMAIN: tuple[tuple[type[errors.QerberosError], int, str, bool], ...] = (
    (errors.ValidationError, 400, "VALIDATION_ERROR", False),
    (errors.PermissionDeniedError, 403, "QONSENT_DENIED", False),
    (errors.NotFoundError, 404, "NOT_FOUND", False),
    (errors.ConflictError, 409, "CONFLICT", False),
    (errors.PayloadTooLargeError, 413, "PAYLOAD_TOO_LARGE", False),
    (errors.DependencyUnavailableError, 503, "DEPENDENCY_UNAVAILABLE", True),
)

_HTTP: Mapping[int, tuple[str, bool]] = {
    400: ("VALIDATION_ERROR", False),
    401: ("SQUID_IDENTITY_MISSING", False),
    403: ("QONSENT_DENIED", False),
    404: ("NOT_FOUND", False),
    405: ("METHOD_NOT_ALLOWED", False),
    409: ("CONFLICT", False),
    413: ("PAYLOAD_TOO_LARGE", False),
    415: ("UNSUPPORTED_MEDIA_TYPE", False),
    429: ("RATE_LIMIT_EXCEEDED", True),
    503: ("DEPENDENCY_UNAVAILABLE", True),
}

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="qerberos"'}
"""Every 401 names the scheme to use (RFC 9110 section 11.6.1); signed requests are the other, described in the
README's security model (no registered scheme name exists for them)."""

_INTERNAL = ErrorAnswer(500, "INTERNAL_ERROR", "internal error; quote the requestId when reporting it", retryable=True)


def describe(exc: BaseException) -> ErrorAnswer:
    """Map an exception to its answer (also used by the metrics to record the real status)."""
    if isinstance(exc, errors.QerberosError):
        return _describe_domain(exc)
    if isinstance(exc, HTTPException):
        return _describe_http(exc)
    return _INTERNAL


def _describe_domain(exc: errors.QerberosError) -> ErrorAnswer:
    if isinstance(exc, errors.AuthenticationError):
        return ErrorAnswer(401, exc.code, exc.message, exc.details, headers=_CHALLENGE)
    if isinstance(exc, errors.RateLimitedError):
        retry = str(max(1, exc.retry_after))
        return ErrorAnswer(429, "RATE_LIMIT_EXCEEDED", exc.message, exc.details, True, {"Retry-After": retry})
    for kind, status_code, code, retryable in _DOMAIN:
        if isinstance(exc, kind):
            return ErrorAnswer(status_code, code, exc.message, exc.details, retryable)
    if isinstance(exc, errors.IntegrityError):
        return _INTERNAL
    if isinstance(exc, errors.LedgerError):
        # A ledger that cannot be read or written is a storage outage: the client may retry.
        return ErrorAnswer(503, "DEPENDENCY_UNAVAILABLE", "the ledger's database is unavailable", retryable=True)
    return _INTERNAL


def _describe_http(exc: HTTPException) -> ErrorAnswer:
    status_code = exc.status_code
    if status_code >= 500 and status_code != 503:
        return _INTERNAL
    code, retryable = _HTTP.get(status_code, ("HTTP_ERROR", False))
    details = _http_details(exc)
    headers = {key: value for key, value in (exc.headers or {}).items() if key.lower() in _KEPT_HEADERS}
    if status_code == 429 and not headers:
        headers = {"Retry-After": "1"}
    if status_code == 401:
        headers |= _CHALLENGE
    message = _http_message(exc)
    if status_code == 400 and not details:
        details = {"body": message}
    return ErrorAnswer(status_code, code, message, details, retryable, headers)


def _http_details(exc: HTTPException) -> dict[str, Any]:
    """Litestar's validation failures by field (``key``, else ``source``), or the exception's own mapping."""
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        return {
            str(item.get("key") or item.get("source") or "$"): str(item.get("message", "invalid"))
            for item in exc.extra
            if isinstance(item, Mapping)
        }
    if isinstance(exc.extra, Mapping):
        return {str(key): value for key, value in exc.extra.items()}
    return {}


_KEPT_HEADERS = frozenset({"retry-after", "allow"})
"""Headers of Litestar's exceptions an answer keeps: a 429's ``Retry-After``, a 405's ``Allow``."""


def _http_message(exc: HTTPException) -> str:
    detail = str(exc.detail or "")
    if exc.status_code == 400 and detail.lower().startswith("validation failed"):
        return "invalid request"
    return detail or "error"


def error_response(answer: ErrorAnswer, request_id: str) -> Response[ErrorResponse]:
    body = ErrorResponse(
        code=answer.code,
        message=answer.message,
        details=dict(answer.details),
        requestId=request_id,
        retryable=answer.retryable,
        timestamp=iso_timestamp(),
    )
    return Response(body, status_code=answer.status_code, headers=dict(answer.headers), media_type=MediaType.JSON)


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorResponse]:
    """Litestar's exception handler for every exception type (registered once, on the app)."""
    answer = _in_callers_names(describe(exc), request)
    request_id = current_request_id() or str(request.scope.get("state", {}).get("request_id", ""))
    if answer.status_code >= 500 and answer is _INTERNAL:
        logger.error(
            "unhandled error in %s %s",
            request.method,
            request.scope.get("path_template", request.url.path),
            exc_info=exc,
        )
    elif answer.status_code == 503:
        logger.warning("dependency unavailable: %s", exc)
    return error_response(answer, request_id)


def _in_callers_names(answer: ErrorAnswer, request: Request[Any, Any, Any]) -> ErrorAnswer:
    """Details keyed by the names the caller sends (``startDate``), not by the handler's Python names
    (``start_date``), which is how Litestar's validation reports a parameter declared under another name."""
    handler = request.scope.get("route_handler")
    signature = getattr(handler, "parsed_fn_signature", None)
    if signature is None or not answer.details:
        return answer
    sent_as = {
        name: alias
        for name, field in signature.parameters.items()
        if (alias := getattr(field.kwarg_definition, "name", None) or getattr(field.kwarg_definition, "query", None))
    }
    if not sent_as.keys() & answer.details.keys():
        return answer
    return dataclasses.replace(answer, details={sent_as.get(key, key): value for key, value in answer.details.items()})


EXCEPTION_HANDLERS = {Exception: handle_exception}


_WITNESS: tuple[tuple[type[errors.QerberosError], int], ...] = (
    (witness.MalformedSubmissionError, 400),
    (witness.UntrustedCheckpointError, 403),
    (witness.UnknownLogError, 404),
    (errors.NotFoundError, 404),
    (witness.StaleSizeError, 409),
    (witness.InconsistentCheckpointError, 422),
)
TLOG_SIZE = "text/x.tlog.size"


def handle_witness_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[str]:
    """The witness app's answers (C2SP tlog-witness): plain text; a 409 carries the witness's size as
    exactly ``text/x.tlog.size`` (no charset parameter: clients compare the header)."""
    if isinstance(exc, witness.StaleSizeError):
        return Response(f"{exc.size}\n", status_code=409, headers={"Content-Type": TLOG_SIZE})
    for kind, status_code in _WITNESS:
        if isinstance(exc, kind):
            return Response(f"{exc}\n", status_code=status_code, media_type=MediaType.TEXT)
    answer = describe(exc)
    if answer is _INTERNAL:
        logger.error("unhandled error in the witness's %s %s", request.method, request.url.path, exc_info=exc)
    return Response(f"{answer.message}\n", status_code=answer.status_code, media_type=MediaType.TEXT)


WITNESS_EXCEPTION_HANDLERS = {Exception: handle_witness_exception}
