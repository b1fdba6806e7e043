"""``qerberos publish``: the event publisher as a process of its own, beside API replicas that leave it off.

In production the API replicas run with ``QERBEROS_EVENT_PUBLISHING=off`` and one ``qerberos publish``
publishes the shared ledger's events to ``QERBEROS_EVENTS_URL`` (``pipelines/events``); its metrics
(``qerberos_events_*``) are served on ``QERBEROS_PUBLISHER_METRICS_PORT``. Several may run: one holds the
publisher lock, the others wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING

import typer

from cli._common import fail, reported_errors
from qerberos.settings import get_settings

if TYPE_CHECKING:
    from pipelines.events import EventPublisher


def register(app: typer.Typer) -> None:
    app.command("publish")(publish)


def publish() -> None:
    """Publish the ledger's events to the broker in the foreground until SIGTERM or Ctrl-C."""
    from prometheus_client import start_http_server

    from models.schema import prepare
    from pipelines.events import EventPublisher
    from qerberos.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_dir)
    if settings.events_url is None:
        raise fail("QERBEROS_EVENTS_URL is not set: there is no broker to publish to")
    with reported_errors(), prepare(settings) as ledger:
        start_http_server(settings.publisher_metrics_port, addr=settings.host)
        publisher = EventPublisher(ledger, settings.events_url, stream=settings.events_stream)
        typer.echo(
            f"publishing to {settings.events_stream}; metrics on port {settings.publisher_metrics_port}", err=True
        )
        asyncio.run(_run_until_stopped(publisher))


async def _run_until_stopped(publisher: EventPublisher) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    task = asyncio.create_task(publisher.run())
    await stopping.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
