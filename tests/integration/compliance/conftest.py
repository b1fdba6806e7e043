"""A simulated ledger shared by the report tests of a module (filling and reporting take seconds)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from models.ledger import Ledger, initialise
from qerberos.settings import Settings, get_settings, load_settings
from tests.integration.compliance.helpers import fill


def settings_for(monkeypatch: pytest.MonkeyPatch, home: Path, database_url: str | None = None) -> Settings:
    monkeypatch.setenv("QERBEROS_HOME", str(home))
    monkeypatch.setenv("QERBEROS_LOG_ORIGIN", "test.qerberos.local/audit")
    monkeypatch.setenv("QERBEROS_LOG_DIR", str(home.parent / "logs"))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    if database_url is None:
        monkeypatch.delenv("QERBEROS_DATABASE_URL", raising=False)
    else:
        monkeypatch.setenv("QERBEROS_DATABASE_URL", database_url)
    get_settings.cache_clear()
    return load_settings()


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Ledger]]:
    """Settings and an open ledger holding a week of simulated traffic of 24 identities (SQLite)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        settings = settings_for(monkeypatch, tmp_path_factory.mktemp("compliance") / "home")
        ledger = initialise(settings)
        fill(ledger)
        yield settings, ledger
        ledger.close()
    get_settings.cache_clear()
