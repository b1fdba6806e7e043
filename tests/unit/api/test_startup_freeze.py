"""A served worker exempts what its startup built from the garbage collector's full passes (tail latency)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from api.app import serve_app
from api.lifecycle import freeze_startup_objects
from tests.conftest import make_settings


def test_freezing_moves_the_live_objects_to_the_permanent_generation() -> None:
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > 10_000  # at least the modules imported so far
    finally:
        gc.unfreeze()


def test_the_served_app_freezes_last_at_startup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("qerberos.logging.configure_logging", lambda *_: None)  # the test process keeps its own
    make_settings(monkeypatch, tmp_path / "home")
    assert freeze_startup_objects is serve_app().on_startup[-1]
