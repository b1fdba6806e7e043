"""Shared fixtures: a fresh qerberos home, and real databases (SQLite file, PostgreSQL schema).

PostgreSQL and Redis run on this machine; a test that needs one fails (never skips) when it is missing.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine

from models.database import create_ledger_engine
from models.identities import create_identity_tables
from models.ledger import Ledger, initialise
from qerberos.settings import Settings, get_settings, load_settings

POSTGRES_ADMIN_URL = os.environ.get("QERBEROS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def _live_detection(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Apps and servers the tests start run without live detection (``QERBEROS_LIVE_DETECTION=off``): starting
    and stopping it, each time with a fresh MLflow store, cost seconds per test. A test about it says so
    with ``@pytest.mark.live_detection`` and gets the default, ``embedded``."""
    embedded = request.node.get_closest_marker("live_detection") is not None
    monkeypatch.setenv("QERBEROS_LIVE_DETECTION", "embedded" if embedded else "off")


def free_port() -> int:
    """A loopback port that was free a moment ago, for a real server of a test."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a schema of its own, dropped afterwards."""
    schema = f"qerberos_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    with admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        yield f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}"
        admin.execute(f"DROP SCHEMA {schema} CASCADE")


def make_settings(monkeypatch: pytest.MonkeyPatch, home: Path, database_url: str | None = None) -> Settings:
    monkeypatch.setenv("QERBEROS_HOME", str(home))
    monkeypatch.setenv("QERBEROS_LOG_ORIGIN", "test.qerberos.local/audit")
    monkeypatch.setenv("QERBEROS_MLFLOW_TRACKING_URI", f"sqlite:///{home.parent / 'mlruns' / 'mlflow.db'}")
    monkeypatch.setenv("QERBEROS_LOG_DIR", str(home.parent / "logs"))
    if database_url is None:
        monkeypatch.delenv("QERBEROS_DATABASE_URL", raising=False)
    else:
        monkeypatch.setenv("QERBEROS_DATABASE_URL", database_url)
    get_settings.cache_clear()
    return load_settings()


@pytest.fixture
def sqlite_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    return make_settings(monkeypatch, tmp_path / "home")


@pytest.fixture(params=["sqlite", "postgres"])
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for each storage backend in turn: the same tests run on SQLite and PostgreSQL."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    return make_settings(monkeypatch, tmp_path / "home", url)


@pytest.fixture
def ledger(backend_settings: Settings) -> Iterator[Ledger]:
    ledger = initialise(backend_settings)
    yield ledger
    ledger.close()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite database holding the identity tables (local mode's identities, tokens and keys)."""
    engine = create_ledger_engine(f"sqlite:///{tmp_path / 'q.db'}")
    create_identity_tables(engine)
    yield engine
    engine.dispose()
