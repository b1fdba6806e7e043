"""Fixtures of the ops tests: the compose file, parsed, and promtool."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

from tests.unit.ops._deploy import COMPOSE_FILE, load_yaml


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    document = load_yaml(COMPOSE_FILE)
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="session")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool from Debian's `prometheus` package; missing is a failure, never a skip (CI or not)."""
    path = shutil.which("promtool")
    if path is None:
        where = "CI (CI=true)" if os.environ.get("CI") == "true" else "this machine"
        pytest.fail(f"promtool is not on PATH on {where}: run `make system-deps` (Debian package `prometheus`)")
    return path
