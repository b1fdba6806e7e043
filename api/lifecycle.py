"""What the service does when it starts and stops, and the periodic checkpoint.

Start: report the memory limit (``qerberos_memory_limit_bytes``), open the ledger (in a worker thread:
SQLAlchemy is synchronous), mark the service ready, and start a task that asks the ledger for a checkpoint
every ``checkpoint_interval`` seconds (the ledger signs a new one only when the log grew) and then brings
the log's witnesses (``QERBEROS_WITNESSES``) up to the newest one. Stop (uvicorn on
SIGTERM/SIGINT has already stopped accepting connections and finished the requests in flight): mark not
ready, stop the task, write a last checkpoint with ``force=True``, close the ledger, and drop this worker's
live metrics files.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio.to_thread
from litestar import Litestar

from analytics.taxonomy import Taxonomy, default_taxonomy
from api import metrics
from models.ledger import Ledger
from models.signer_state import CheckpointRefusedError
from pipelines.witnessing import Witnessing
from qerberos.resources import observe_memory_limit
from qerberos.settings import Settings

logger = logging.getLogger(__name__)


@dataclasses.dataclass(slots=True)
class ServiceState:
    """Mutable state of one worker, kept on ``app.state.service``."""

    settings: Settings
    ledger_factory: Callable[[], Ledger]
    owns_ledger: bool
    ledger: Ledger | None = None
    ready: bool = False
    started_monotonic: float = dataclasses.field(default_factory=time.monotonic)
    checkpointer: asyncio.Task[None] | None = None
    witnessing: Witnessing | None = None
    taxonomy: Taxonomy = dataclasses.field(default_factory=default_taxonomy)  # classifies imports, /metrics

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started_monotonic

    def require_ledger(self) -> Ledger:
        if self.ledger is None:
            from qerberos.errors import DependencyUnavailableError

            raise DependencyUnavailableError("the ledger is not open (the service is starting or stopping)")
        return self.ledger


def service_state(app: Litestar) -> ServiceState:
    state: ServiceState = app.state.service
    return state


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    state = service_state(app)
    observe_memory_limit(state.settings)
    state.ledger = await anyio.to_thread.run_sync(state.ledger_factory)
    settings = state.settings
    state.witnessing = Witnessing(settings.witnesses, settings.witness_timeout) if settings.witnesses else None
    state.checkpointer = asyncio.create_task(_checkpoint_every(state), name="qerberos-checkpointer")
    state.ready = True
    logger.info("qerberos ready (ledger of %d events)", await anyio.to_thread.run_sync(state.ledger.size))
    try:
        yield
    finally:
        state.ready = False
        state.checkpointer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await state.checkpointer
        if state.witnessing is not None:
            await state.witnessing.aclose()
        await anyio.to_thread.run_sync(_close, state)
        metrics.mark_worker_dead()


def freeze_startup_objects() -> None:
    """Exempt what startup built (modules, the app, the open ledger) from the garbage collector's full passes.

    It lives as long as the worker, yet each full collection walked all of it: about 200,000 objects,
    100 ms here, a pause that every request in flight waited out (the p99 of searches). ``gc.freeze``
    moves them to the permanent generation; what requests create is collected as before.
    """
    gc.collect()
    gc.freeze()


async def _checkpoint_every(state: ServiceState) -> None:
    interval = max(0.1, state.settings.checkpoint_interval)
    while True:
        await asyncio.sleep(interval)
        ledger = state.ledger
        if ledger is None:
            continue
        try:
            await anyio.to_thread.run_sync(ledger.checkpoint)
            if state.witnessing is not None:
                await state.witnessing.round(ledger)
        except CheckpointRefusedError as refused:  # every round refuses again until someone looks
            metrics.CHECKPOINT_REFUSALS.inc()
            logger.critical("%s", refused.message)
        except Exception:  # the loop must survive a database hiccup; the next round retries
            logger.exception("periodic checkpoint failed")


def _close(state: ServiceState) -> None:
    ledger = state.ledger
    if ledger is None:
        return
    try:
        note = ledger.checkpoint(force=True)
        logger.info("last checkpoint written at size %s", _note_size(note))
    except Exception:
        logger.exception("could not write the last checkpoint at shutdown")
    finally:
        state.ledger = None
        if state.owns_ledger:
            ledger.close()


def _note_size(note: Any) -> str:
    lines = str(note).split("\n")
    return lines[1] if len(lines) > 1 else "?"
