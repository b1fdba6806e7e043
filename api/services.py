"""The services the routes use, built in the app's lifespan and handed to handlers by dependency injection.

``services_lifespan`` runs after ``api.lifecycle.lifespan`` has opened the ledger: it builds the risk service
(and reads every identity's history into memory in the background, ``RiskService.prime``), this worker's
report jobs, and live detection with its alert store (or, where live detection is off because a separate
``qerberos detect`` process runs it, the alert store alone). They live on ``app.state`` (``risk``,
``report_jobs``, ``detection``, ``alerts``); at shutdown the risk history held for writing is stored, queued
reports are dropped and detection stops. A controller declares ``dependencies = provides("risk", ...)`` and its
handlers take ``risk: Risk`` (likewise ``Detection``, ``Alerts``, ``Jobs``, ``AppSettings``): the
providers read the service from ``app.state`` at each request (a test may put its own there), and a service
that is not there is a ``DependencyUnavailableError`` (503).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeAlias, TypeVar

import anyio.to_thread
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import SkipValidation

from api.lifecycle import ServiceState
from models.ledger import Ledger
from pipelines.alert_service import AlertService
from pipelines.live_detection import LiveDetection
from pipelines.on_demand_detection import Detection as DetectionService
from pipelines.on_demand_detection import ReplicaDetection
from pipelines.report_jobs import ReportJobs
from pipelines.risk import RiskService, build_risk_service
from qerberos.errors import DependencyUnavailableError
from qerberos.settings import Settings

__all__ = [
    "Alerts",
    "AppSettings",
    "Detection",
    "Jobs",
    "Risk",
    "provide_alerts",
    "provide_detection",
    "provide_report_jobs",
    "provide_risk",
    "provide_settings",
    "provides",
    "services_lifespan",
]

_Service = TypeVar("_Service")
PRIMING_WAIT_SECONDS = 30.0
"""How long a stopping worker waits for the risk history still being read (a large ledger's first read)."""

# What a handler takes: the service itself (SkipValidation: injected values are otherwise validated and copied)
Risk: TypeAlias = NamedDependency[SkipValidation[RiskService]]
Detection: TypeAlias = NamedDependency[SkipValidation[DetectionService]]
Alerts: TypeAlias = NamedDependency[SkipValidation[AlertService]]
Jobs: TypeAlias = NamedDependency[SkipValidation[ReportJobs]]
AppSettings: TypeAlias = NamedDependency[SkipValidation[Settings]]


@contextlib.asynccontextmanager
async def services_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Register after ``api.lifecycle.lifespan``: ``lifespan=[lifespan, services_lifespan]``."""
    state: ServiceState = app.state.service
    ledger = state.require_ledger()
    risk = await anyio.to_thread.run_sync(lambda: build_risk_service(ledger.engine, ledger, write_behind=True))
    priming = threading.Thread(target=risk.prime, name="qerberos-risk-prime", daemon=True)
    priming.start()
    app.state.risk = risk
    app.state.report_jobs = ReportJobs(state.settings, ledger)
    try:
        async with _detection(app, state.settings, ledger):
            yield
    finally:
        app.state.report_jobs.close()
        # its read session goes back to the ledger's pool before the ledger closes (a worker stopped at once)
        await anyio.to_thread.run_sync(priming.join, PRIMING_WAIT_SECONDS)
        await anyio.to_thread.run_sync(risk.close)


@contextlib.asynccontextmanager
async def _detection(app: Litestar, settings: Settings, ledger: Ledger) -> AsyncIterator[None]:
    if settings.live_detection == "off":  # a separate `qerberos detect` process does it
        # on-demand detection loads the champion itself; alerts are read and updated in the shared database
        app.state.detection = ReplicaDetection(settings.mlflow_tracking_uri)
        app.state.alerts = AlertService(ledger.engine, ledger)  # its tables are `qerberos init`'s
        try:
            yield
        finally:
            app.state.alerts = None
            app.state.detection = None
        return
    from pipelines.model_registry import ChampionWatcher  # MLflow and PyOD: loaded only where detection runs

    uri = settings.mlflow_tracking_uri
    detection = await anyio.to_thread.run_sync(lambda: LiveDetection(ledger, ChampionWatcher(uri), tracking_uri=uri))
    app.state.detection = detection
    detection.start()
    try:
        yield
    finally:
        await anyio.to_thread.run_sync(detection.stop)
        app.state.detection = None


def _from_state(name: str, kind: type[_Service], absent: str) -> Callable[[State], _Service]:
    """A provider of ``app.state.<name>``, which must be a ``kind``."""

    def provide(state: State) -> Any:
        service = state.get(name)
        if not isinstance(service, kind):
            raise DependencyUnavailableError(f"{absent} (the service is starting or stopping)")
        return service

    return provide


provide_risk = _from_state("risk", RiskService, "the risk service is not running")
provide_report_jobs = _from_state("report_jobs", ReportJobs, "the report jobs are not running")
_provide_alert_store = _from_state("alerts", AlertService, "the alert store is not open")


def provide_detection(state: State) -> DetectionService:
    """The live engine, or where live detection is off the replica's own champion (``ReplicaDetection``)."""
    detection = state.get("detection")
    if not isinstance(detection, LiveDetection | ReplicaDetection):
        raise DependencyUnavailableError("live detection is not running (the service is starting or stopping)")
    return detection


def provide_alerts(state: State) -> AlertService:
    """Live detection's own alert store, or the one over the ledger alone where detection is off."""
    detection = state.get("detection")
    if isinstance(detection, LiveDetection):
        return detection.store
    return _provide_alert_store(state)


def provide_settings(state: State) -> Settings:
    service: ServiceState = state.service
    return service.settings


_PROVIDERS: dict[str, Callable[[State], Any]] = {
    "risk": provide_risk,
    "detection": provide_detection,
    "alerts": provide_alerts,
    "report_jobs": provide_report_jobs,
    "settings": provide_settings,
}


def provides(*names: str) -> dict[str, Provide]:
    """The providers of the named services, for a controller's ``dependencies``."""
    return {name: Provide(_PROVIDERS[name], sync_to_thread=False) for name in names}
