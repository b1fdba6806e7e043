"""The security layer of the API: authentication (sQuid or local identities), permissions (Qonsent or local
grants), per-caller rate limiting, a limit on failed authentication per client address and claimed identity,
and replay protection, as components the app factory plugs in.

``build_security(settings)`` returns everything at once::

    security = build_security(settings)              # engine=... optional in local mode
    Litestar(
        middleware=list(security.middleware),        # [authentication, rate limit]: in this order
        on_startup=list(security.on_startup),
        on_shutdown=list(security.on_shutdown),      # closes the HTTP clients and the Redis client
        guards=[...],                                # security.requires("audit:read") is a guard
    )

Handlers with ``opt={"public": True}`` skip authentication and rate limiting; handlers with
``opt={"metrics_token": True}`` also accept ``Bearer QERBEROS_METRICS_TOKEN``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from litestar import Litestar
from litestar.types import Guard, Middleware

from api.security.authentication import (
    METRICS_TOKEN_OPT_KEY,
    PUBLIC_OPT_KEY,
    AuthenticationMiddleware,
    Authenticator,
    LocalVerifier,
    RemoteVerifier,
    Verifier,
    authentication_middleware,
)
from api.security.caller import Caller, Credential
from api.security.counters import FallbackCounter, HostCounter, MemoryCounter, RedisCounter, WindowCounter
from api.security.failures import FailureLimit
from api.security.local import LocalIdentities
from api.security.permissions import LocalPolicy, Policy, QonsentPolicy, make_requires
from api.security.qonsent import PERMISSION_MAP, QonsentClient
from api.security.rate_limit import rate_limit_config
from api.security.replay import HostReplayGuard, MemoryReplayGuard, RedisReplayGuard, ReplayGuard
from api.security.squid import SquidClient
from models.host_state import HostState
from models.identities import PERMISSIONS, create_identity_tables, ensure_admin
from qerberos.errors import ConfigurationError
from qerberos.settings import Settings

if TYPE_CHECKING:  # a handle passed through to models.identities: api runs no SQL
    from sqlalchemy import Engine

logger = logging.getLogger(__name__)

__all__ = [
    "METRICS_TOKEN_OPT_KEY",
    "PERMISSIONS",
    "PERMISSION_MAP",
    "PUBLIC_OPT_KEY",
    "AuthenticationMiddleware",
    "Authenticator",
    "Caller",
    "Credential",
    "SecurityComponents",
    "build_security",
    "create_identity_tables",
    "ensure_admin",
    "rate_limit_config",
]


@dataclasses.dataclass(frozen=True, slots=True)
class SecurityComponents:
    """Same field names as ``api.app.SecurityHooks``: ``SecurityHooks(**security.as_hooks())``."""

    middleware: Sequence[Middleware]
    requires: Callable[[str], Guard]
    on_startup: Sequence[Callable[[Litestar], Any]]
    on_shutdown: Sequence[Callable[[Litestar], Any]]

    def as_hooks(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


def build_security(
    settings: Settings,
    *,
    engine: Engine | None = None,
    redis_prefix: str = "qerberos",
) -> SecurityComponents:
    """Everything the app needs for ``settings.auth_mode`` ("local" or "remote")."""
    closers: list[Callable[[], Awaitable[None]]] = []
    replay, counter = _shared_memory(settings, redis_prefix, closers)

    verifier: Verifier
    policy: Policy
    if settings.auth_mode == "local":
        if engine is None:
            from models.database import create_ledger_engine

            engine = create_ledger_engine(settings.database_url)
            closers.append(lambda: anyio.to_thread.run_sync(engine.dispose))  # ours: its connections too
        verifier, policy = LocalVerifier(LocalIdentities(engine)), LocalPolicy()
    elif settings.auth_mode == "remote":
        timeout = settings.security_timeout
        squid = SquidClient(settings.squid_url, timeout=timeout, cache_ttl=settings.squid_cache_ttl)
        qonsent = QonsentClient(
            settings.qonsent_url, timeout=timeout, ttl=settings.qonsent_cache_ttl, grace=settings.qonsent_grace
        )
        verifier, policy = RemoteVerifier(squid), QonsentPolicy(qonsent)
        closers += [squid.aclose, qonsent.aclose]
    else:
        raise ConfigurationError(f"QERBEROS_AUTH_MODE must be local or remote, not {settings.auth_mode!r}")

    failures = FailureLimit(counter, settings.auth_failures_per_minute)
    authenticator = Authenticator(verifier, replay, failures, metrics_token=settings.metrics_token)
    middleware: list[Middleware] = [authentication_middleware(authenticator)]
    if settings.rate_limit_per_minute > 0:
        middleware.append(rate_limit_config(settings.rate_limit_per_minute, counter).middleware)

    async def close(_app: Litestar) -> None:
        for closer in closers:
            await closer()

    return SecurityComponents(
        middleware=tuple(middleware),
        requires=make_requires(policy),
        on_startup=(),
        on_shutdown=(close,),
    )


def _shared_memory(
    settings: Settings, redis_prefix: str, closers: list[Callable[[], Awaitable[None]]]
) -> tuple[ReplayGuard, WindowCounter]:
    """Where used signed requests and the counters live: Redis when configured (every replica shares it);
    else, with several workers, the host's shared state in QERBEROS_HOME (every worker of this host shares
    it; it must open, or the service does not start); else this one process."""
    if settings.redis_url:
        # redis-py loads OpenTelemetry's SDK when it is installed: about 40 MB a process pays only when it uses Redis
        from redis.asyncio import Redis

        redis = Redis.from_url(settings.redis_url)
        closers.append(redis.aclose)
        return RedisReplayGuard(redis, redis_prefix), FallbackCounter(RedisCounter(redis, redis_prefix), "redis")
    if settings.workers > 1:
        state = HostState.in_home(settings.home)
        closers.append(lambda: anyio.to_thread.run_sync(state.close))
        logger.info("replay protection and limits shared by the workers through %s", state.path)
        return HostReplayGuard(state), FallbackCounter(HostCounter(state), "the workers' shared state")
    return MemoryReplayGuard(), MemoryCounter()
