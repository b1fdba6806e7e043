"""Fixtures of the API tests: a real ledger (SQLite under tmp_path) behind the real app, in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import SecurityHooks, create_app
from models.ledger import initialise
from qerberos.settings import Settings
from tests.conftest import make_settings

METRICS_TOKEN = "metrics-test-token"
MAX_BODY_BYTES = 4 * 1024 * 1024


def event_body(n: int = 0, **changes: Any) -> dict[str, Any]:
    """One event in the upstream request shape."""
    body: dict[str, Any] = {
        "type": "access",
        "ref": f"file:doc-{n}",
        "actor": {"squidId": f"did:squid:user{n % 3}", "subId": "work"},
        "layer": "qdrive",
        "verdict": ("ALLOW", "DENY", "WARN")[n % 3],
        "details": {"operation": "download", "n": n},
        "timestamp": f"2026-01-01T00:{n % 60:02d}:00.000Z",
    }
    body.update(changes)
    return body


@pytest.fixture
def api_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("QERBEROS_METRICS_TOKEN", METRICS_TOKEN)
    monkeypatch.setenv("QERBEROS_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("QERBEROS_MAX_BODY_BYTES", str(MAX_BODY_BYTES))
    monkeypatch.setenv("QERBEROS_CHECKPOINT_INTERVAL", "0.2")
    monkeypatch.setenv("QERBEROS_AUTH_MODE", "local")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    settings = make_settings(monkeypatch, tmp_path / "home")
    initialise(settings).close()
    return settings


@pytest.fixture
def security() -> SecurityHooks | None:
    """The security hooks under test; ``None`` means the app's own (``api.app.security_hooks``)."""
    return None


@pytest.fixture
def client(api_settings: Settings, security: SecurityHooks | None) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(api_settings, security=security), raise_server_exceptions=False) as test_client:
        yield test_client
