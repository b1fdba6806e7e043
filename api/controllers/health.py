"""``/health`` (the runbook's shape), ``/health/detailed``, ``/health/live`` and ``/health/ready``.

``/health``, ``/live`` and ``/ready`` are public (orchestrators and load balancers call them);
``/health/detailed`` needs an authenticated caller. ``/health`` answers 200 when healthy or degraded
(sQuid, Qonsent or a configured Redis down, or the ledger cannot take writes: its last write failed or its
disk is full) and 503 when unhealthy (the ledger's database does not answer); ``reasons`` says why it is not
healthy.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import shutil
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, get

from api.envelope import iso_timestamp
from api.lifecycle import ServiceState
from api.probes import DependencyProbes, storage_problems
from api.schemas import (
    DependencyStatus,
    DetailedHealthResponse,
    DiskHealth,
    HealthResponse,
    LedgerHealth,
    ProbeResponse,
    b64,
)
from models.ledger import Ledger
from qerberos.errors import LedgerError

PUBLIC_PATHS = ("/health", "/health/live", "/health/ready")

try:
    __version__ = importlib.metadata.version("qerberos")
except importlib.metadata.PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"


def _state(request: Request[Any, Any, Any]) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def _probes(request: Request[Any, Any, Any]) -> DependencyProbes:
    probes: DependencyProbes = request.app.state.probes
    return probes


def _overall(checked: dict[str, DependencyStatus], storage: list[str]) -> tuple[str, list[str]]:
    """The status and its reasons: unhealthy when the database is down, degraded when another dependency
    is or the ledger cannot take writes (``storage_problems``), else healthy."""
    reasons = [f"{name} does not answer" for name, item in checked.items() if item.status == "down"] + storage
    if checked["database"].status == "down":
        return "unhealthy", reasons
    return ("degraded" if reasons else "healthy"), reasons


class HealthController(Controller):
    path = "/health"
    tags = ("Health",)

    @get("/", summary="Health check (the runbook's shape)", opt={"public": True}, operation_id="getHealth")
    async def health(self, request: Request[Any, Any, Any]) -> Response[HealthResponse]:
        probes = _probes(request)
        dependencies = await probes.auth_services()
        database, redis = await asyncio.gather(probes.check("database"), probes.check("redis"))
        state = _state(request)
        storage = storage_problems(state.settings, state.ledger)
        status, reasons = _overall({**dependencies, "database": database, "redis": redis}, storage)
        body = HealthResponse(
            status=status,  # type: ignore[arg-type]
            timestamp=iso_timestamp(),
            version=__version__,
            dependencies=dependencies,
            reasons=reasons,
        )
        return Response(body, status_code=503 if status == "unhealthy" else 200)

    @get("/detailed", summary="Every dependency, the ledger, disk and uptime", operation_id="getHealthDetailed")
    async def detailed(self, request: Request[Any, Any, Any]) -> Response[DetailedHealthResponse]:
        state = _state(request)
        dependencies = await _probes(request).everything()
        ledger = state.ledger
        storage = storage_problems(state.settings, ledger)
        ledger_health = None
        if ledger is not None and dependencies["database"].status == "up":
            try:
                ledger_health = await anyio.to_thread.run_sync(_ledger_health, ledger)
            except LedgerError as exc:  # the database went away since its check
                dependencies["database"] = DependencyStatus(status="down", latency=0, error=exc.message)
        usage = shutil.disk_usage(state.settings.home if state.settings.home.exists() else "/")
        status, reasons = _overall(dependencies, storage)
        body = DetailedHealthResponse(
            status=status,  # type: ignore[arg-type]
            timestamp=iso_timestamp(),
            version=__version__,
            uptime_seconds=round(state.uptime_seconds, 3),
            dependencies=dependencies,
            ledger=ledger_health,
            disk=DiskHealth(
                path=str(state.settings.home),
                total_bytes=usage.total,
                free_bytes=usage.free,
                used_percent=round(100 * usage.used / usage.total, 2) if usage.total else 0.0,
            ),
            pid=os.getpid(),
            reasons=reasons,
        )
        return Response(body, status_code=503 if status == "unhealthy" else 200)

    @get("/live", opt={"public": True}, summary="Liveness: the process answers", operation_id="getLiveness")
    async def live(self) -> ProbeResponse:
        return ProbeResponse(status="alive", timestamp=iso_timestamp())

    @get(
        "/ready",
        opt={"public": True},
        summary="Readiness: started, not stopping, database reachable",
        operation_id="getReadiness",
    )
    async def ready(self, request: Request[Any, Any, Any]) -> Response[ProbeResponse]:
        state = _state(request)
        if not state.ready:
            return Response(ProbeResponse("not ready", iso_timestamp(), "starting or stopping"), status_code=503)
        database = await _probes(request).check("database")
        if database.status != "up":
            return Response(ProbeResponse("not ready", iso_timestamp(), "database unreachable"), status_code=503)
        return Response(ProbeResponse("ready", iso_timestamp()), status_code=200)


def _ledger_health(ledger: Ledger) -> LedgerHealth:
    from api import metrics

    readings = metrics.observe_ledger(ledger)
    size, age = readings.size, readings.checkpoint_age_seconds
    head = ledger.get_by_seq(size - 1) if size else None
    return LedgerHealth(
        size=size,
        head_seq=head.seq if head else None,
        head_leaf_hash=b64(head.leaf_hash) if head else None,
        checkpoint_age_seconds=round(age, 3) if age is not None else None,
        unsigned_entries_age_seconds=round(readings.unsigned_age_seconds, 3),
        last_write_error=ledger.write_failure,
    )
