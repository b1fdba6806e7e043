"""``GET /metrics``: Prometheus text format, for a bearer ``QERBEROS_METRICS_TOKEN`` or an authenticated caller.

The route is outside the authentication middleware (a scraper holds the metrics token, not a sQuid
identity); the handler accepts the token, and otherwise authenticates the request the way every other
route is authenticated (``app.state.authenticate``, provided by the security layer).
"""

from __future__ import annotations

import hmac
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, get

from api import metrics
from models.ledger import Ledger
from qerberos.errors import AuthenticationError


class MetricsController(Controller):
    path = "/metrics"
    tags = ("Monitoring",)

    @get(
        "/",
        opt={"public": True},
        summary="Prometheus metrics",
        operation_id="getMetrics",
        media_type="text/plain; version=0.0.4",
    )
    async def metrics(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        await _authorise(request)
        ledger: Ledger | None = request.app.state.service.ledger
        if ledger is not None:
            await anyio.to_thread.run_sync(metrics.observe_ledger, ledger)
        await request.app.state.probes.auth_services()
        body, content_type = await anyio.to_thread.run_sync(metrics.render_metrics)
        return Response(body, media_type=content_type.replace("; charset=utf-8", ""))


async def _authorise(request: Request[Any, Any, Any]) -> None:
    token = request.app.state.service.settings.metrics_token
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(), token.encode()):
        return
    authenticate = request.app.state.authenticate
    if authenticate is None:
        raise AuthenticationError("SQUID_IDENTITY_MISSING", "a metrics token or an authenticated caller is required")
    await authenticate(request)
