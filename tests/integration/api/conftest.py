"""Fixtures of the API tests: a real ledger (SQLite under tmp_path) behind the real app, in-process, with
the app's own security on (local mode: identities and their tokens in qerberos's database)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import SecurityHooks, create_app
from api.security import build_security
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


def configure_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None = None) -> Settings:
    """Settings of an API test (local mode, a metrics token) and a prepared ledger on that database."""
    monkeypatch.setenv("QERBEROS_METRICS_TOKEN", METRICS_TOKEN)
    monkeypatch.setenv("QERBEROS_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("QERBEROS_MAX_BODY_BYTES", str(MAX_BODY_BYTES))
    monkeypatch.setenv("QERBEROS_CHECKPOINT_INTERVAL", "0.2")
    monkeypatch.setenv("QERBEROS_AUTH_MODE", "local")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    settings = make_settings(monkeypatch, tmp_path / "home", database_url)
    prepare(settings).close()
    return settings


@pytest.fixture
def api_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    return configure_api(tmp_path, monkeypatch)


@pytest.fixture(params=["sqlite", "postgres"])
def backend_api_settings(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """``api_settings`` on each storage backend in turn."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    return configure_api(tmp_path, monkeypatch, url)


@contextlib.contextmanager
def local_security(settings: Settings) -> Iterator[SecurityHooks]:
    """The app's own local-mode security, on an engine disposed afterwards: the engine it makes for itself is
    never closed, which leaves a PostgreSQL connection to a ResourceWarning (an error here) at exit."""
    engine = create_ledger_engine(settings.database_url)
    try:
        yield SecurityHooks(**build_security(settings, engine=engine).as_hooks())
    finally:
        engine.dispose()


@pytest.fixture
def backend_client(backend_api_settings: Settings) -> Iterator[TestClient[Any]]:
    """``client`` on each storage backend in turn."""
    token = make_token(backend_api_settings, "api-tests", ["admin"])
    with (
        local_security(backend_api_settings) as hooks,
        TestClient(create_app(backend_api_settings, security=hooks), raise_server_exceptions=False) as test_client,
    ):
        test_client.headers["Authorization"] = f"Bearer {token}"
        yield test_client


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
