"""Fixtures of the backup and restore tests: the CLI, a live deployment with a passphrase, a fresh target."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import typer
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from cli import ledger as ledger_commands
from cli import ops
from models.ledger import Ledger, initialise
from qerberos.settings import Settings, get_settings
from tests.conftest import POSTGRES_ADMIN_URL, make_settings
from tests.integration.ledger.helpers import event

PASSPHRASE = "correct horse battery staple"

app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
ledger_commands.register(app)
ops.register(app)
_runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    """`qerberos ARGS` in-process (the ops commands as `cli/__init__.py` registers them)."""
    result = _runner.invoke(app, list(args))
    return result.exit_code, result.output


def append(settings: Settings, count: int, start: int = 0) -> None:
    with Ledger.from_settings(settings) as ledger:
        ledger.append([event(n) for n in range(start, start + count)])


def _go_live(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    initialise(settings).close()
    monkeypatch.setenv("QERBEROS_KEY_PASSPHRASE", PASSPHRASE)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def live(backend_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """An initialised deployment (keys created without a passphrase), the passphrase now set for backups."""
    yield from _go_live(backend_settings, monkeypatch)


@pytest.fixture
def live_sqlite(sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The same on SQLite only, for what does not depend on the backend."""
    yield from _go_live(sqlite_settings, monkeypatch)


@pytest.fixture
def fresh_target(live: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Settings]]:
    """Switches the environment to a new home (and, on PostgreSQL, a new empty database, same schema)."""
    created: list[str] = []

    def switch() -> Settings:
        url = None
        if not live.is_sqlite:
            name = f"qerberos_ops_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"'.encode())
            created.append(name)
            url = make_url(live.database_url).set(database=name).render_as_string(hide_password=False)
        make_settings(monkeypatch, tmp_path / "restored-home", url)
        return get_settings()

    yield switch
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        for name in created:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


class Ingestion:
    """Appends batches of events from a background thread until stopped."""

    def __init__(self, settings: Settings, batch: int = 25) -> None:
        self._ledger = Ledger.from_settings(settings)
        self._batch = batch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.appended = 0
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._ledger.append([event(self.appended + i) for i in range(self._batch)])
                self.appended += self._batch
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def __enter__(self) -> Ingestion:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._ledger.close()
        assert self.error is None, self.error
