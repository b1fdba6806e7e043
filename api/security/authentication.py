"""The authentication middleware: every request except handlers marked ``opt={"public": True}`` must carry
``Authorization: Bearer <token>`` or the signed headers (``signed_request``); handlers marked
``opt={"metrics_token": True}`` also take ``Bearer QERBEROS_METRICS_TOKEN``.

It sets ``request.user`` (a ``Caller``) and ``request.auth`` (a ``Credential``: the scheme, never the
secret). For the signed scheme it reads the body to hash it, and in local mode only once the claimed
identity is known to hold a key; Litestar keeps the bytes in the connection state, so the handler's own
``request.body()``/``data`` read them again. Failures raise
``AuthenticationError`` / ``DependencyUnavailableError``; the app's one error mapping answers them.
"""

from __future__ import annotations

import dataclasses
import hmac
import time
from typing import Any, Protocol

from litestar import Request
from litestar.enums import ScopeType
from litestar.middleware._utils import should_bypass_middleware
from litestar.middleware.authentication import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.base import DefineMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from api.security import signed_request
from api.security.caller import Caller, Credential
from api.security.failures import FailureLimit, failure_keys
from api.security.local import LocalIdentities
from api.security.replay import ReplayGuard
from api.security.signed_request import SignedHeaders
from api.security.squid import SquidClient
from qerberos.errors import AuthenticationError

PUBLIC_OPT_KEY = "public"
METRICS_TOKEN_OPT_KEY = "metrics_token"
METRICS_SCRAPER = Caller(squid_id="", sub_id=None, dao_id=None, source="metrics-token")
"""Who holds ``QERBEROS_METRICS_TOKEN``: a caller of ``/metrics`` only, with its own rate limit."""


class Verifier(Protocol):
    """Turns credentials into a caller; raises ``AuthenticationError`` or ``DependencyUnavailableError``."""

    async def bearer(self, token: str) -> tuple[Caller, Credential]: ...

    async def check_signer(self, squid_id: str) -> None:
        """Refuse, before the request's body is read, an identity that cannot have signed it."""
        ...

    async def signed(self, headers: SignedHeaders, payload: str) -> tuple[Caller, Credential]: ...


class RemoteVerifier:
    """sQuid decides (``QERBEROS_AUTH_MODE=remote``)."""

    def __init__(self, squid: SquidClient) -> None:
        self.squid = squid

    async def bearer(self, token: str) -> tuple[Caller, Credential]:
        return await self.squid.verify_token(token), Credential("bearer")

    async def check_signer(self, squid_id: str) -> None:
        """Nothing to ask: sQuid's contract answers about a whole signature only, not about an identity (the
        failed-authentication limit bounds what unknown identities cost)."""

    async def signed(self, headers: SignedHeaders, payload: str) -> tuple[Caller, Credential]:
        valid = await self.squid.verify_signature(headers.squid_id, headers.signature, headers.timestamp, payload)
        if not valid:
            raise AuthenticationError("SIGNATURE_INVALID", "the signature does not verify")
        caller = Caller(headers.squid_id, headers.sub_id, headers.dao_id, f"squid:{headers.squid_id}")
        return caller, Credential("signature")


class LocalVerifier:
    """qerberos's own identities decide (``QERBEROS_AUTH_MODE=local``)."""

    def __init__(self, identities: LocalIdentities) -> None:
        self.identities = identities

    async def bearer(self, token: str) -> tuple[Caller, Credential]:
        return await self.identities.verify_token(token)

    async def check_signer(self, squid_id: str) -> None:
        await self.identities.signer(squid_id)

    async def signed(self, headers: SignedHeaders, payload: str) -> tuple[Caller, Credential]:
        caller, credential = await self.identities.verify_signature(headers.squid_id, headers.signature, payload)
        return dataclasses.replace(caller, sub_id=headers.sub_id, dao_id=headers.dao_id), credential


class Authenticator:
    """Reads the credentials of a request and verifies them.

    A client address or claimed identity with too many recent failures is refused first (``failures``).
    On handlers with ``opt["metrics_token"]`` (``/metrics``) the bearer token ``metrics_token`` is also a
    caller, ``METRICS_SCRAPER``, which holds no permission and is rate limited like any other caller.
    """

    def __init__(
        self,
        verifier: Verifier,
        replay: ReplayGuard,
        failures: FailureLimit,
        *,
        metrics_token: str | None = None,
        clock: Any = time.time,
    ) -> None:
        self.verifier = verifier
        self.replay = replay
        self.failures = failures
        self._metrics_token = metrics_token.encode() if metrics_token else None
        self._clock = clock

    async def authenticate(self, request: Request[Any, Any, Any]) -> tuple[Caller, Credential]:
        keys = failure_keys(request)
        self.failures.check(keys)
        try:
            return await self._verify(request)
        except AuthenticationError:
            await self.failures.failed(keys)
            raise

    async def _verify(self, request: Request[Any, Any, Any]) -> tuple[Caller, Credential]:
        headers = request.headers
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, token = authorization.strip().partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer":
                raise AuthenticationError("SQUID_IDENTITY_INVALID", "Authorization must use the Bearer scheme")
            if not token:
                raise AuthenticationError("SQUID_IDENTITY_MISSING", "the bearer token is empty")
            if self._is_metrics_token(request, token):
                return METRICS_SCRAPER, Credential("bearer", frozenset())
            return await self.verifier.bearer(token)
        signed = _signed_headers(headers)
        signature = signed_request.decode_signature(signed.signature)
        signed_request.check_fresh(signed.timestamp, self._clock())
        await self.verifier.check_signer(signed.squid_id)
        body = await request.body()
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        target = signed_request.request_target(raw_path.decode("latin-1"), request.scope.get("query_string", b""))
        payload = signed_request.canonical_payload(request.method, target, signed, body)
        caller, credential = await self.verifier.signed(signed, payload)
        keys = signed_request.replay_keys(payload, signature)
        if not await self.replay.first_use(keys, signed_request.REPLAY_TTL_SECONDS):
            raise AuthenticationError("SIGNATURE_INVALID", "this signature was already used (replay)")
        return caller, credential

    def _is_metrics_token(self, request: Request[Any, Any, Any], token: str) -> bool:
        handler = request.scope.get("route_handler")
        accepted = handler is not None and handler.opt.get(METRICS_TOKEN_OPT_KEY) is True
        return accepted and self._metrics_token is not None and hmac.compare_digest(token.encode(), self._metrics_token)


def _signed_headers(headers: Any) -> SignedHeaders:
    squid_id = (headers.get("x-squid-id") or "").strip()
    if not squid_id:
        raise AuthenticationError(
            "SQUID_IDENTITY_MISSING", "send Authorization: Bearer <token> or the signed headers x-squid-id, x-ts, x-sig"
        )
    signature = (headers.get("x-sig") or "").strip()
    if not signature:
        raise AuthenticationError("SIGNATURE_MISSING", "x-sig is missing")
    timestamp = (headers.get("x-ts") or "").strip()
    if not timestamp:
        raise AuthenticationError("TIMESTAMP_INVALID", "x-ts is missing")
    return SignedHeaders(
        squid_id=squid_id,
        sub_id=(headers.get("x-subid") or "").strip() or None,
        dao_id=(headers.get("x-dao-id") or "").strip() or None,
        timestamp=timestamp,
        signature=signature,
    )


class AuthenticationMiddleware(AbstractAuthenticationMiddleware):
    """Litestar authentication middleware; skips handlers with ``opt["public"]`` and OPTIONS requests."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        super().__init__(app, exclude_from_auth_key=PUBLIC_OPT_KEY, scopes={ScopeType.HTTP})
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Overridden because the base class hands ``authenticate_request`` a connection without ``receive``,
        # and the signed scheme must read the body.
        if not should_bypass_middleware(
            exclude_http_methods=self.exclude_http_methods,
            exclude_opt_key=self.exclude_opt_key,
            exclude_path_pattern=self.exclude,
            scope=scope,
            scopes=self.scopes,
        ):
            request: Request[Any, Any, Any] = scope["litestar_app"].request_class(scope, receive)
            caller, credential = await self.authenticator.authenticate(request)
            scope["user"] = caller
            scope["auth"] = credential
        await self.app(scope, receive, send)

    async def authenticate_request(self, connection: Any) -> AuthenticationResult:  # pragma: no cover - unused
        raise NotImplementedError("AuthenticationMiddleware authenticates in __call__")


def authentication_middleware(authenticator: Authenticator) -> DefineMiddleware:
    return DefineMiddleware(AuthenticationMiddleware, authenticator=authenticator)
