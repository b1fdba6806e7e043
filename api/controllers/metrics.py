"""``GET /metrics``: Prometheus text format, for a bearer ``QERBEROS_METRICS_TOKEN`` or an authenticated caller.

The route goes through the authentication and rate-limit middleware like every other route; its
``opt["metrics_token"]`` tells the security layer to also take the metrics token here (a scraper holds
that token, not a sQuid identity). Either caller is counted against its own rate limit.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, get

from api import metrics
from models.ledger import Ledger
from models.publish_cursor import PublishCursor
from pipelines.events import observe_publish_lag


class MetricsController(Controller):
    path = "/metrics"
    tags = ("Monitoring",)

    @get(
        "/",
        opt={"metrics_token": True},
        summary="Prometheus metrics",
        operation_id="getMetrics",
        media_type="text/plain; version=0.0.4",
    )
    async def metrics(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        ledger: Ledger | None = request.app.state.service.ledger
        if ledger is not None:
            readings = await anyio.to_thread.run_sync(metrics.observe_ledger, ledger)
            taxonomy = request.app.state.service.taxonomy
            await anyio.to_thread.run_sync(metrics.observe_categories, ledger, taxonomy, readings.size)
            if request.app.state.service.settings.events_url is not None:
                await anyio.to_thread.run_sync(observe_publish_lag, PublishCursor(ledger.engine))
            witnessing = request.app.state.service.witnessing
            if witnessing is not None:
                await anyio.to_thread.run_sync(metrics.observe_witnesses, ledger, witnessing.names)
        await request.app.state.probes.auth_services()
        body, content_type = await anyio.to_thread.run_sync(metrics.render_metrics)
        return Response(body, media_type=content_type.replace("; charset=utf-8", ""))
