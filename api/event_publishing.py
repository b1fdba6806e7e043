"""The event publisher embedded in the API process (``QERBEROS_EVENT_PUBLISHING=embedded``, the default) when
``QERBEROS_EVENTS_URL`` names a broker: a task of the worker's event loop for as long as the app runs. With
several workers each runs one and the publisher lock lets one publish (``pipelines.events.publisher``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from litestar import Litestar

from pipelines.events import EventPublisher


@contextlib.asynccontextmanager
async def publishing_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Register after ``api.lifecycle.lifespan``, which opens the ledger the publisher reads."""
    state = app.state.service
    settings = state.settings
    if settings.events_url is None or settings.event_publishing == "off":
        yield
        return
    publisher = EventPublisher(state.require_ledger(), settings.events_url, stream=settings.events_stream)
    task = asyncio.create_task(publisher.run(), name="qerberos-event-publisher")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
