"""api.errors maps every error to its contract code, and an unexpected one to a generic logged 500."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.exceptions import (
    MethodNotAllowedException,
    NotFoundException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.testing import TestClient

from api.errors import EXCEPTION_HANDLERS, describe
from qerberos import errors

CASES = [
    (errors.ValidationError("bad", details={"type": "x"}), 400, "VALIDATION_ERROR", False),
    (errors.AuthenticationError("SQUID_IDENTITY_MISSING", "who?"), 401, "SQUID_IDENTITY_MISSING", False),
    (errors.AuthenticationError("SIGNATURE_MISSING", "sig?"), 401, "SIGNATURE_MISSING", False),
    (errors.AuthenticationError("TIMESTAMP_INVALID", "when?"), 401, "TIMESTAMP_INVALID", False),
    (errors.AuthenticationError("SQUID_IDENTITY_INVALID", "no"), 401, "SQUID_IDENTITY_INVALID", False),
    (errors.AuthenticationError("SIGNATURE_INVALID", "no"), 401, "SIGNATURE_INVALID", False),
    (errors.PermissionDeniedError("denied"), 403, "QONSENT_DENIED", False),
    (errors.NotFoundError("none"), 404, "NOT_FOUND", False),
    (errors.ConflictError("clash"), 409, "CONFLICT", False),
    (errors.PayloadTooLargeError("big"), 413, "PAYLOAD_TOO_LARGE", False),
    (errors.RateLimitedError("slow", retry_after=3), 429, "RATE_LIMIT_EXCEEDED", True),
    (errors.DependencyUnavailableError("qonsent down"), 503, "DEPENDENCY_UNAVAILABLE", True),
    (errors.LedgerError("db gone"), 503, "DEPENDENCY_UNAVAILABLE", True),
    (errors.IntegrityError("tampered", seq=3), 500, "INTERNAL_ERROR", True),
    (
        ValidationException(extra=[{"key": "limit", "message": "too big", "source": "query"}]),
        400,
        "VALIDATION_ERROR",
        False,
    ),
    (NotFoundException(), 404, "NOT_FOUND", False),
    (MethodNotAllowedException(), 405, "METHOD_NOT_ALLOWED", False),
    (RequestEntityTooLarge(), 413, "PAYLOAD_TOO_LARGE", False),
    (TooManyRequestsException(headers={"Retry-After": "9"}), 429, "RATE_LIMIT_EXCEEDED", True),
    (RuntimeError("boom at /secret/path"), 500, "INTERNAL_ERROR", True),
]


@pytest.mark.parametrize(("exc", "status", "code", "retryable"), CASES, ids=[type(c[0]).__name__ for c in CASES])
def test_describe_maps_each_error_to_its_status_code_and_retryability(
    exc: Exception, status: int, code: str, retryable: bool
) -> None:
    answer = describe(exc)
    assert (status, code, retryable) == (answer.status_code, answer.code, answer.retryable)


def test_rate_limit_answers_carry_retry_after() -> None:
    assert {"Retry-After": "3"} == dict(describe(errors.RateLimitedError("slow", retry_after=3)).headers)
    assert {"Retry-After": "9"} == dict(describe(TooManyRequestsException(headers={"Retry-After": "9"})).headers)


def test_litestar_validation_details_name_each_field() -> None:
    exc = ValidationException(
        extra=[{"key": "limit", "message": "too big", "source": "query"}, {"key": "verdict", "message": "no"}]
    )
    assert {"limit": "too big", "verdict": "no"} == dict(describe(exc).details)


def test_unexpected_error_is_a_generic_500_logged_with_request_id_and_no_trace_in_the_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @get("/boom", sync_to_thread=False)
    def boom() -> None:
        raise RuntimeError("secret internals")

    app = Litestar([boom], exception_handlers=EXCEPTION_HANDLERS, logging_config=None)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="api.errors"), TestClient(app) as client:
        response = client.get("/boom")

    body: dict[str, Any] = response.json()
    assert (500, "INTERNAL_ERROR") == (response.status_code, body["code"])
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text
    assert ["unhandled error in GET /boom"] == [record.getMessage() for record in caplog.records]
    assert caplog.records[0].exc_info is not None
