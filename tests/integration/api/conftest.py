"""Fixtures of the API tests: a real ledger (SQLite under tmp_path) behind the real app, in-process, with
the app's own security on (local mode: identities and their tokens in qerberos's database)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import SecurityHooks, create_app
from models.database import create_ledger_engine
from models.identities import create_identity, create_identity_tables
from models.schema import prepare
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
    prepare(settings).close()
    return settings


def make_token(settings: Settings, name: str, permissions: list[str]) -> str:
    """A local identity with these permissions; its bearer token."""
    engine = create_ledger_engine(settings.database_url)
    try:
        create_identity_tables(engine)
        return create_identity(engine, name, permissions)[1]
    finally:
        engine.dispose()


@pytest.fixture
def admin_token(api_settings: Settings) -> str:
    return make_token(api_settings, "api-tests", ["admin"])


@pytest.fixture
def security() -> SecurityHooks | None:
    """The security hooks under test; ``None`` means the app's own (``api.app.security_hooks``)."""
    return None


@pytest.fixture
def app_client(api_settings: Settings, security: SecurityHooks | None) -> Iterator[TestClient[Any]]:
    """A client without credentials."""
    with TestClient(create_app(api_settings, security=security), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def client(app_client: TestClient[Any], admin_token: str) -> TestClient[Any]:
    """A client authenticated as an identity holding ``admin``."""
    app_client.headers["Authorization"] = f"Bearer {admin_token}"
    return app_client
