"""The application factory: ``create_app(settings)`` builds the Litestar app of one worker.

Layers, from the outside in: ``InstrumentedASGI`` (request id, metrics, access log, sees every real
status code) → Litestar's exception handling (``api.errors``, the one place errors become HTTP) →
security middleware (authentication, rate limit; from ``api.security``) → the permission guard (each
route names its permission in ``opt["permission"]``) → the controllers.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard, Middleware

from api.controllers.anomaly import AlertsController, AnomalyAlertsController, AnomalyController
from api.controllers.audit import AuditController
from api.controllers.compliance import ComplianceController
from api.controllers.health import HealthController, __version__
from api.controllers.ingest import IngestController
from api.controllers.ledger import LedgerController
from api.controllers.metrics import MetricsController
from api.controllers.risk import RiskController
from api.controllers.transparency import TransparencyController
from api.errors import EXCEPTION_HANDLERS
from api.event_publishing import publishing_lifespan
from api.json_body import StrictJSONRequest
from api.lifecycle import ServiceState, freeze_startup_objects, lifespan
from api.metrics import InstrumentedASGI
from api.openapi import openapi_config
from api.probes import DependencyProbes
from api.services import services_lifespan
from models.ledger import Ledger
from qerberos.settings import Settings, get_settings

PUBLIC_OPT_KEY = "public"
"""Handlers with ``opt["public"]`` skip authentication and rate limiting: ``/health``, ``/health/live``,
``/health/ready``, and the transparency log's ``/checkpoint`` and hash tiles (``api/controllers/transparency.py``).
(``/metrics`` is not public: its ``opt["metrics_token"]`` lets the security layer also take
``QERBEROS_METRICS_TOKEN`` there, and its callers are rate limited like any others.)"""

GuardFactory = Callable[[str], Guard]


@dataclasses.dataclass(frozen=True, slots=True)
class SecurityHooks:
    """What the security layer contributes to the app.

    ``middleware`` (authentication, then rate limiting) must skip handlers whose ``opt`` carries
    ``PUBLIC_OPT_KEY``; ``requires(permission)`` returns a guard.
    """

    middleware: Sequence[Middleware] = ()
    requires: GuardFactory | None = None
    on_startup: Sequence[Callable[[Litestar], Any]] = ()
    on_shutdown: Sequence[Callable[[Litestar], Any]] = ()


def security_hooks(settings: Settings) -> SecurityHooks:
    """The security layer (``api.security``) for ``settings.auth_mode``: authentication then rate-limit
    middleware, and the ``requires(permission)`` guard factory."""
    from api.security import build_security

    return SecurityHooks(**build_security(settings).as_hooks())


def create_app(
    settings: Settings | None = None,
    *,
    ledger: Ledger | None = None,
    security: SecurityHooks | None = None,
) -> Litestar:
    """Build the app. ``ledger`` (tests) is used as given and not closed at shutdown; ``security``
    replaces the hooks built from the settings (tests only: ``SecurityHooks()`` means no authentication)."""
    settings = settings or get_settings()
    hooks = security if security is not None else security_hooks(settings)
    state = ServiceState(
        settings=settings,
        ledger_factory=(lambda: ledger) if ledger is not None else (lambda: Ledger.from_settings(settings)),
        owns_ledger=ledger is None,
    )
    app = Litestar(
        route_handlers=[
            AuditController,
            IngestController,
            LedgerController,
            HealthController,
            MetricsController,
            AnomalyController,
            AlertsController,
            AnomalyAlertsController,
            ComplianceController,
            RiskController,
            TransparencyController,
        ],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        middleware=list(hooks.middleware),
        guards=[_permission_guard(hooks.requires)],
        # the services and the publisher need the ledger the service lifespan opens
        lifespan=[lifespan, services_lifespan, publishing_lifespan],
        on_startup=list(hooks.on_startup),
        on_shutdown=list(hooks.on_shutdown),
        openapi_config=openapi_config(__version__, public=settings.public_schema),
        request_max_body_size=settings.max_body_bytes,
        request_class=StrictJSONRequest,
        logging_config=None,
        debug=False,
    )
    app.state.service = state
    app.state.probes = DependencyProbes(settings, lambda: state.ledger)
    app.asgi_handler = InstrumentedASGI(app.asgi_handler)
    return app


def serve_app() -> Litestar:
    """The factory uvicorn imports in each worker (``api.app:serve_app``): settings from the environment,
    logging configured once for this process."""
    from qerberos.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_dir)
    app = create_app(settings)
    # last, after the lifespans; a served worker's only: an in-process app (tests) would pin every app built
    app.on_startup.append(freeze_startup_objects)
    return app


def _permission_guard(requires: GuardFactory | None) -> Guard:
    """One app-level guard that enforces ``opt["permission"]`` with the security layer's guards.

    ``opt["permission"]`` is a permission's name, or a function of the request that names the permission
    this request needs (``None``: none beyond authentication), for a route whose answer depends on what it
    is asked (an inclusion proof by event id confirms that the event exists; by sequence number it does not).
    """
    guards: dict[str, Guard] = {}

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        permission = handler.opt.get("permission")
        if callable(permission):
            permission = permission(connection)
        if permission is None or requires is None:
            return
        if permission not in guards:
            guards[permission] = requires(permission)
        outcome = guards[permission](connection, handler)
        if inspect.isawaitable(outcome):
            await outcome

    return guard
