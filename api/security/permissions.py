"""Permission guards: ``requires(permission)`` returns a Litestar guard. Deny by default; ``admin`` implies all.

Local mode checks the identity's own grant set (``request.auth.permissions``); remote mode asks Qonsent
(``qonsent.QonsentClient``), first for the permission itself, then for ``admin``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from api.security.caller import Caller, Credential
from api.security.qonsent import QonsentClient
from models.identities import PERMISSIONS
from qerberos.errors import AuthenticationError, PermissionDeniedError

ADMIN = "admin"


class Policy(Protocol):
    async def allows(self, caller: Caller, credential: Credential, permission: str) -> tuple[bool, str]: ...


class LocalPolicy:
    async def allows(self, caller: Caller, credential: Credential, permission: str) -> tuple[bool, str]:
        granted = credential.permissions or frozenset()
        if permission in granted or ADMIN in granted:
            return True, ""
        return False, "the identity does not hold this permission"


class QonsentPolicy:
    def __init__(self, qonsent: QonsentClient) -> None:
        self.qonsent = qonsent

    async def allows(self, caller: Caller, credential: Credential, permission: str) -> tuple[bool, str]:
        decision = await self.qonsent.check(caller, permission)
        if decision.allowed:
            return True, decision.reason
        if permission != ADMIN and (await self.qonsent.check(caller, ADMIN)).allowed:
            return True, "admin"
        return False, decision.reason or "Qonsent did not allow it"


def make_requires(policy: Policy) -> Callable[[str], Guard]:
    """The guard factory for one policy."""

    def requires(permission: str) -> Guard:
        if permission not in PERMISSIONS:
            raise ValueError(f"unknown permission {permission!r}; known: {', '.join(PERMISSIONS)}")

        async def guard(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
            caller = connection.scope.get("user")
            credential = connection.scope.get("auth")
            if not isinstance(caller, Caller) or not isinstance(credential, Credential):
                # Fails closed: a guarded route reached without the authentication middleware.
                raise AuthenticationError("SQUID_IDENTITY_MISSING", "authentication is required")
            allowed, reason = await policy.allows(caller, credential, permission)
            if not allowed:
                raise PermissionDeniedError(
                    f"permission {permission} is not granted", details={"permission": permission, "reason": reason}
                )

        guard.__name__ = f"requires_{permission.replace(':', '_')}"
        return guard

    return requires
