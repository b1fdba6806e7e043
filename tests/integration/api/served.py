"""A real ``qerberos serve`` on a loopback port (local mode, SQLite, rate limit off), for the tests that drive the
service as its integrators do: the schema fuzzer, the generated client, the docs page in a browser."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from models.ledger import initialise
from qerberos.settings import Settings
from tests.conftest import free_port
from tests.integration.ops.stack import REPO, Service

STARTUP_SECONDS = 180
"""A served process with live detection loads its champion model first: on a loaded 2-core machine that takes more
than a minute at times."""


@dataclasses.dataclass(frozen=True)
class Served:
    url: str
    token: str
    settings: Settings

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextlib.contextmanager
def serve(settings: Settings, logs: Path, **environment: str) -> Iterator[Served]:
    """The service over ``settings`` (its ledger initialised here), with ``environment`` added (``QERBEROS_*``)."""
    initialise(settings).close()
    port = free_port()
    env = {
        **os.environ,
        "QERBEROS_HOME": str(settings.home),
        "QERBEROS_HOST": "127.0.0.1",
        "QERBEROS_PORT": str(port),
        "QERBEROS_AUTH_MODE": "local",
        "QERBEROS_RATE_LIMIT_PER_MINUTE": "0",
        "QERBEROS_LOG_LEVEL": "WARNING",
        **environment,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    service = Service("qerberos", [sys.executable, "-m", "cli.serve", "serve"], env, logs, REPO)
    service.start()
    try:
        url = f"http://127.0.0.1:{port}"
        service.wait_http(f"{url}/health/ready", timeout=STARTUP_SECONDS)
        yield Served(url, (settings.home / "admin.token").read_text().strip(), settings)
    finally:
        service.stop()
