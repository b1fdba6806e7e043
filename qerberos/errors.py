"""The one exception hierarchy of qerberos.

Domain code raises these; third-party errors are wrapped at the boundary (``raise LedgerError(...) from
exc``). They become HTTP responses in exactly one place, ``api/errors.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class QerberosError(Exception):
    """Base of every error qerberos raises on purpose."""

    def __init__(self, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})


class ValidationError(QerberosError):
    """Input that does not have the required shape; ``details`` names every failing field."""


class NotFoundError(QerberosError):
    """The thing asked for does not exist."""


class ConflictError(QerberosError):
    """The request contradicts what is stored (an idempotency key reused with other content)."""


class LedgerError(QerberosError):
    """The ledger could not be read or written."""


class IntegrityError(LedgerError):
    """Stored history does not verify; ``seq`` is the first bad sequence number when known."""

    def __init__(self, message: str, *, seq: int | None = None, details: Mapping[str, Any] | None = None):
        super().__init__(message, details=details)
        self.seq = seq


class DependencyUnavailableError(QerberosError):
    """A service we depend on (database, sQuid, Qonsent, Redis, MLflow) did not answer."""


class ConfigurationError(QerberosError):
    """Settings or files on disk are missing or inconsistent."""


class DetectorError(QerberosError):
    """A detector could not be fitted or produced scores that cannot be trusted (NaN, infinite).

    Here rather than beside the detectors (``analytics.detectors`` re-exports it): a process that only asks the
    model registry whether there is a champion catches it without importing PyOD, scikit-learn and numba.
    """


class AuthenticationError(QerberosError):
    """The caller could not be authenticated. ``code`` is the contract's code, e.g. ``SIGNATURE_INVALID``."""

    def __init__(self, code: str, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.code = code


class PermissionDeniedError(QerberosError):
    """Qonsent (or the local policy) did not grant the permission asked for."""


class RateLimitedError(QerberosError):
    """The caller exceeded its request budget; ``retry_after`` is in whole seconds."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLargeError(QerberosError):
    """A request body or a details object exceeds its bound."""
