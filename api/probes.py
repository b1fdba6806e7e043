"""Measured checks of the services qerberos depends on, cached briefly so health polling stays cheap.

Each check makes one real request (or query) and reports ``up``/``down`` with the latency measured in
milliseconds. In ``QERBEROS_AUTH_MODE=local`` sQuid and Qonsent are embedded: nothing is called and the
answer says ``mode: "local"`` with latency 0 rather than inventing a figure. ``storage_problems`` says what
keeps the ledger from taking writes while its database still answers reads: its last write failed, or a
disk it writes to is full.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlparse

import anyio.to_thread
import httpx

from api import metrics
from api.schemas import DependencyStatus
from models.database import sqlite_file
from models.ledger import Ledger
from qerberos.settings import Settings

logger = logging.getLogger(__name__)

CACHE_SECONDS = 5.0
TIMEOUT_SECONDS = 2.0
DISK_FULL_FRACTION = 0.01
DISK_FULL_BYTES = 64 * 1024 * 1024
"""A disk is full for the ledger below this much free space: 1% of it, at most 64 MiB (an SQLite append
grows its log by pages, a PostgreSQL dump or a report by megabytes)."""

Check = Callable[[], Awaitable[None]]


class DependencyProbes:
    """One per worker; ``check(name)`` answers from a cache younger than ``CACHE_SECONDS``."""

    def __init__(self, settings: Settings, ledger: Callable[[], Ledger | None]) -> None:
        self._settings = settings
        self._ledger = ledger
        self._cache: dict[str, tuple[float, DependencyStatus]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def local_auth(self) -> bool:
        return self._settings.auth_mode == "local"

    async def auth_services(self) -> dict[str, DependencyStatus]:
        squid, qonsent = await asyncio.gather(self.check("squid"), self.check("qonsent"))
        return {"squid": squid, "qonsent": qonsent}

    async def everything(self) -> dict[str, DependencyStatus]:
        names = ("squid", "qonsent", "database", "redis", "mlflow")
        results = await asyncio.gather(*(self.check(name) for name in names))
        return dict(zip(names, results, strict=True))

    async def check(self, name: str) -> DependencyStatus:
        cached = self._cache.get(name)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        async with self._locks.setdefault(name, asyncio.Lock()):
            cached = self._cache.get(name)
            if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
                return cached[1]
            result = await self._measure(name)
            self._cache[name] = (time.monotonic(), result)
            if result.mode is None:
                metrics.record_dependency(name, result.status == "up", result.latency / 1000)
            return result

    async def _measure(self, name: str) -> DependencyStatus:
        if name in ("squid", "qonsent") and self.local_auth:
            return DependencyStatus(status="up", latency=0, mode="local")
        if name == "redis" and not self._settings.redis_url:
            return DependencyStatus(status="up", latency=0, mode="not configured")
        check: Check = {
            "squid": lambda: _http_ok(f"{self._settings.squid_url.rstrip('/')}/health"),
            "qonsent": lambda: _http_ok(f"{self._settings.qonsent_url.rstrip('/')}/health"),
            "database": self._database,
            "redis": self._redis,
            "mlflow": self._mlflow,
        }[name]
        started = time.perf_counter()
        try:
            await asyncio.wait_for(check(), TIMEOUT_SECONDS)
        except Exception as exc:  # every failure is "down", with its reason
            latency = round((time.perf_counter() - started) * 1000, 2)
            reason = type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {str(exc)[:200]}"
            logger.warning("dependency %s is down: %s", name, reason)
            return DependencyStatus(status="down", latency=latency, error=reason)
        return DependencyStatus(status="up", latency=round((time.perf_counter() - started) * 1000, 2))

    async def _database(self) -> None:
        """The ledger's size: one index probe that needs the server, the database and the ledger's table (a
        bare ``SELECT 1`` answers while the schema is gone)."""
        ledger = self._ledger()
        if ledger is None:
            raise RuntimeError("ledger not open")
        await anyio.to_thread.run_sync(ledger.size)

    async def _redis(self) -> None:
        import redis.asyncio as aioredis

        client = aioredis.from_url(str(self._settings.redis_url), socket_connect_timeout=TIMEOUT_SECONDS)
        try:
            await client.ping()
        finally:
            await client.aclose()

    async def _mlflow(self) -> None:
        uri = self._settings.mlflow_tracking_uri
        parsed = urlparse(uri)
        if parsed.scheme in ("http", "https"):
            await _http_ok(f"{uri.rstrip('/')}/health")
            return
        # A local store: the folder (or the SQLite file's folder) must exist or be creatable.
        path = Path(parsed.path if parsed.scheme else uri)
        if parsed.scheme.startswith("sqlite"):
            path = Path(uri.split(":///", 1)[-1]).parent
        target = path if path.exists() else path.parent
        if not target.exists():
            raise FileNotFoundError(str(path))


async def _http_ok(url: str) -> None:
    """Reachable and not failing: any answer below 500 counts as up."""
    async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
        response = await client.get(url)
    if response.status_code >= 500:
        raise RuntimeError(f"HTTP {response.status_code}")


def storage_problems(settings: Settings, ledger: Ledger | None) -> list[str]:
    """What keeps the ledger from taking writes, in words for ``/health`` (no paths, no driver text: the
    answer is public): its last write failed, or the disk of ``QERBEROS_HOME`` or of the SQLite database
    is full."""
    problems = []
    if ledger is not None and ledger.write_failure is not None:
        problems.append("the ledger's last write failed")
    for what, path in _disks(settings):
        usage = shutil.disk_usage(path)
        if usage.free < min(usage.total * DISK_FULL_FRACTION, DISK_FULL_BYTES):
            problems.append(f"the disk of {what} is full ({usage.free} bytes free)")
    return problems


def _disks(settings: Settings) -> list[tuple[str, Path]]:
    """The directories whose disks the ledger writes to, one per device."""
    disks = [("QERBEROS_HOME", settings.home if settings.home.exists() else Path("/"))]
    database = sqlite_file(settings.database_url)
    folder = None if database is None else database.parent
    if folder is not None and folder.exists() and folder.stat().st_dev != disks[0][1].stat().st_dev:
        disks.append(("the SQLite database", folder))
    return disks
