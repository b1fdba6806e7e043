"""The log's side (``QERBEROS_WITNESSES``): every checkpoint goes to two real witnesses, ``GET /checkpoint``
serves it with their cosignatures (k of n checked by the stand-alone verifier), /metrics the lag of each."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from api.app import create_app
from cli import app
from models.ledger import checkpoint_size
from models.schema import prepare
from qerberos import verifier
from qerberos.settings import Settings
from tests.conftest import make_settings
from tests.integration.api.conftest import METRICS_TOKEN, event_body, make_token
from tests.integration.witness.processes import witness_server


def _witness(tmp_path: Path, name: str) -> tuple[Path, str]:
    state = tmp_path / name.replace("/", "_")
    result = CliRunner().invoke(app, ["witness", "init", "--state", str(state), "--name", name])
    assert 0 == result.exit_code, result.output
    return state, result.output.strip()


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20  # the checkpointer runs every 0.2 s here
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _lags(client: TestClient[Any]) -> dict[str, float]:
    text = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    return {s.labels["witness"]: s.value for s in samples if s.name == "qerberos_witness_lag_seconds"}


@dataclasses.dataclass
class WitnessedLog:
    client: TestClient[Any]
    settings: Settings
    witness_keys: list[str]
    witnesses: list[contextlib.ExitStack]  # closing one stops that witness's process


@pytest.fixture
def witnessed_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WitnessedLog]:
    """The API (in-process, checkpoint interval 0.2 s) and two witnesses as real processes."""
    monkeypatch.setenv("QERBEROS_METRICS_TOKEN", METRICS_TOKEN)
    monkeypatch.setenv("QERBEROS_CHECKPOINT_INTERVAL", "0.2")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    settings = make_settings(monkeypatch, tmp_path / "home")
    with prepare(settings) as ledger:
        log_key = ledger.verifier_key()
    witnesses = [_witness(tmp_path, name) for name in ("w1.test/witness", "w2.test/witness")]
    with contextlib.ExitStack() as stack:
        processes = [stack.enter_context(contextlib.ExitStack()) for _ in witnesses]
        urls = [
            process.enter_context(witness_server(state, [log_key]))
            for process, (state, _) in zip(processes, witnesses, strict=True)
        ]
        monkeypatch.setenv(
            "QERBEROS_WITNESSES", ", ".join(f"{url} {key}" for url, (_, key) in zip(urls, witnesses, strict=True))
        )
        settings = make_settings(monkeypatch, tmp_path / "home")
        token = make_token(settings, "writer", ["admin"])
        client = stack.enter_context(TestClient(create_app(settings), raise_server_exceptions=False))
        client.headers["Authorization"] = f"Bearer {token}"
        yield WitnessedLog(client, settings, [key for _, key in witnesses], processes)


def _cosigners(log: WitnessedLog) -> tuple[int, int]:
    """(size, how many witnesses cosigned it) of what ``GET /checkpoint`` serves."""
    response = log.client.get("/checkpoint")
    if response.status_code != 200:  # before the first checkpoint
        return -1, 0
    return checkpoint_size(response.text), len(verifier.verify_cosignatures(response.text, log.witness_keys, 0))


def test_each_checkpoint_is_served_with_the_cosignatures_of_both_witnesses(witnessed_log: WitnessedLog) -> None:
    log = witnessed_log
    keys = log.client.get("/ledger/key").json()["data"]["verifierKeys"]
    log.client.post("/audit/batch", json=[event_body(n) for n in range(30)])
    _wait_for(lambda: _cosigners(log) == (30, 2), "a checkpoint of 30 cosigned by both witnesses")
    note = log.client.get("/checkpoint").text
    assert 30 == verifier.verify_witnessed_checkpoint(note, keys, log.settings.log_origin, log.witness_keys, 2).size
    assert {"w1.test/witness": 0.0, "w2.test/witness": 0.0} == _lags(log.client)


def test_a_witness_that_stops_lags_and_the_other_keeps_cosigning(witnessed_log: WitnessedLog) -> None:
    log = witnessed_log
    log.client.post("/audit/batch", json=[event_body(n) for n in range(5)])
    _wait_for(lambda: _cosigners(log) == (5, 2), "a checkpoint of 5 cosigned by both witnesses")
    log.witnesses[1].close()
    log.client.post("/audit/batch", json=[event_body(n) for n in range(5, 12)])
    _wait_for(lambda: _cosigners(log) == (12, 1), "a checkpoint of 12 cosigned by the witness still up")
    _wait_for(lambda: _lags(log.client)["w2.test/witness"] > 0, "the stopped witness's lag")
    assert 0.0 == _lags(log.client)["w1.test/witness"]
