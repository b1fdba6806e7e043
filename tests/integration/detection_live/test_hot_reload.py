"""The live engine picks up a new champion without a restart, and says whether a model is loaded."""

from __future__ import annotations

import dataclasses
import time

import pytest
from prometheus_client import REGISTRY

from analytics.rules import load_detection_config
from models.ledger import initialise
from pipelines.live_detection import ERROR_STAGES, LiveDetection
from pipelines.model_registry import ChampionWatcher, set_champion
from qerberos.errors import QerberosError


def gauge() -> float | None:
    return REGISTRY.get_sample_value("qerberos_detector_model_loaded")


@pytest.fixture
def ledger(sqlite_settings):
    ledger = initialise(sqlite_settings)
    yield ledger
    ledger.close()


def test_a_new_champion_is_loaded_by_the_running_engine(ledger, tracking_uri):
    config = load_detection_config()
    config = dataclasses.replace(config, live=dataclasses.replace(config.live, refresh_seconds=0.2, poll_seconds=0.1))
    detection = LiveDetection(ledger, ChampionWatcher(tracking_uri), config=config, tracking_uri=tracking_uri)
    detection.start()
    try:
        deadline = time.monotonic() + 60
        while detection.detector() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "1" == detection.detector().version
        assert 1.0 == gauge()
        set_champion(tracking_uri, "2", tags={"promoted_by": "test"})
        while detection.detector().version != "2" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "2" == detection.detector().version
        assert ["hbos"] == [name for name, _, _ in detection.detector().pipeline.detector.members]
    finally:
        detection.stop()
    assert 0.0 == gauge()


def test_without_a_registry_the_engine_runs_rules_only_and_reports_no_model(ledger):
    detection = LiveDetection(ledger, None)
    assert not detection.refresh_model()
    assert detection.detector() is None
    assert 0.0 == gauge()


class _FailingWatcher:
    def refresh(self) -> bool:
        raise QerberosError("the registry is unreachable")

    def current(self) -> None:
        return None


def _sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_the_leading_engine_stamps_when_it_caught_up_and_counts_errors_by_stage(ledger):
    config = load_detection_config()
    config = dataclasses.replace(config, live=dataclasses.replace(config.live, refresh_seconds=0.2, poll_seconds=0.1))
    detection = LiveDetection(ledger, _FailingWatcher(), config=config)
    assert all(_sample("qerberos_detector_errors_total", stage=stage) is not None for stage in ERROR_STAGES)
    model_errors = _sample("qerberos_detector_errors_total", stage="model") or 0.0
    started = time.time()
    detection.start()
    try:
        deadline = time.monotonic() + 30
        while (_sample("qerberos_detector_caught_up_timestamp_seconds") or 0) < started and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        detection.stop()
    assert started <= (_sample("qerberos_detector_caught_up_timestamp_seconds") or 0) <= time.time()
    assert (_sample("qerberos_detector_errors_total", stage="model") or 0) > model_errors
