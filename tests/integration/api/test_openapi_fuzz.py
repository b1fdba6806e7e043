"""Schemathesis over the OpenAPI document the service serves (``/schema/openapi.json``): every operation, with
valid and invalid parameters and bodies, is answered without a server error (5xx); and its own runner, with every
check (``--checks all``: documented statuses, headers and content types, response schemas, valid requests accepted,
invalid ones refused, ``Allow`` on 405, authentication enforced), finds no mismatch between the document and the
service. The exceptions, rules that span parameters or depend on the stored log, are in ``schemathesis.toml``
beside this file, each with its reason.

A real ``qerberos serve`` (local mode, SQLite) with a trained champion detector, so that no 503 is the honest
answer of a missing dependency; authenticated as an admin identity, rate limit off. Bounded: a fixed seed,
``MAX_EXAMPLES`` positive and as many negative cases per operation (about 2,500 requests), no shrinking. Only
"not a server error" is checked here: whether the document describes every status and shape exactly is another
matter. The cases come from schemathesis's strategies (``APIOperation.as_strategy``) under a ``given`` of ours:
its pytest integration for fixtures (``schemathesis.pytest.from_fixture``) reads ``Node._nodeid``, which pytest 9
no longer has.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.core.result import Ok

from analytics.detectors import load_config
from analytics.labels import label_windows
from analytics.simulation import SimulationConfig, simulate
from analytics.window_features import compute_features
from models.ledger import Ledger
from models.verification import verify_ledger
from pipelines.model_registry import set_champion
from pipelines.train import train
from tests.conftest import make_settings
from tests.integration.api.conftest import event_body
from tests.integration.api.served import Served, serve

MAX_EXAMPLES = 50
SEED = 20261207
CHECKS_EXAMPLES = 10
CHECKS_SECONDS = 300
CHECKS_CONFIG = Path(__file__).resolve().parent / "schemathesis.toml"


def _train_champion(tracking_uri: str) -> None:
    """A small detector (HBOS on 10 simulated identities over 3 days), made champion."""
    result = simulate(SimulationConfig(identities=10, days=3, seed=1))
    features = label_windows(compute_features(result.events.lazy(), "1h").collect(), result.labels)
    config = dataclasses.replace(load_config(), eval_share=0.3).with_members(("hbos",))
    version = train(features, config=config, tracking_uri=tracking_uri, gate=False).version
    set_champion(tracking_uri, version, tags={"promoted_by": "tests"})


SLASHED_PATH_PARAMETER = {"/tile/{path}"}
"""Operations whose path parameter holds slashes (C2SP tile paths), which schemathesis does not generate."""


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    settings = make_settings(monkeypatch, tmp_path / "home")
    _train_champion(settings.mlflow_tracking_uri)
    # failed authentications are what the `ignored_auth` check sends: unlimited, they do not turn into 429s
    with serve(settings, tmp_path / "logs", QERBEROS_AUTH_FAILURES_PER_MINUTE="0") as service:
        seeded = httpx.post(f"{service.url}/audit/batch", json=[event_body(n) for n in range(20)], headers=service.auth)
        assert 201 == seeded.status_code, seeded.text
        yield service


@pytest.mark.live_detection  # POST /anomaly/detect answers 503 where live detection is off
def test_no_operation_of_the_served_document_answers_a_server_error(served: Served) -> None:
    """Each operation, positive then negative cases, ``MAX_EXAMPLES`` each; every 5xx is collected, then listed."""
    auth = {"Authorization": f"Bearer {served.token}"}
    schema = schemathesis.openapi.from_url(f"{served.url}/schema/openapi.json", headers=auth)
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(results) == len(operations), [result for result in results if not isinstance(result, Ok)]
    server_errors: list[str] = []
    sent = 0

    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @hypothesis.seed(SEED)
            @hypothesis.settings(
                max_examples=MAX_EXAMPLES,
                database=None,
                deadline=None,
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],  # no shrinking: every 5xx counts
                suppress_health_check=list(hypothesis.HealthCheck),
            )
            @hypothesis.given(case=operation.as_strategy(mode))
            def send(case: Case[Any]) -> None:
                nonlocal sent
                response = case.call(base_url=served.url, headers=auth, timeout=60)
                sent += 1
                if response.status_code >= 500:
                    server_errors.append(f"{response.status_code} {response.text[:300]}\n  {case.as_curl_command()}")

            try:
                send()
            except hypothesis.errors.Unsatisfiable:
                # nothing to break in an operation without parameters (the probes, GET /checkpoint); a path
                # parameter holding "/" is never generated by schemathesis (the tile routes have tests of their own)
                nothing_to_break = mode is schemathesis.GenerationMode.NEGATIVE and not list(
                    operation.iter_parameters()
                )
                if not (nothing_to_break or operation.path in SLASHED_PATH_PARAMETER):
                    raise

    assert [] == server_errors
    assert sent >= len(operations) * MAX_EXAMPLES  # every operation was exercised, in both modes
    with Ledger.from_settings(served.settings) as ledger:
        assert verify_ledger(ledger).intact


@pytest.mark.live_detection
def test_every_check_of_schemathesis_finds_the_document_and_the_service_agree(served: Served, tmp_path: Path) -> None:
    """``st run`` with every check (``checks.enabled`` in the config: ``--checks all`` would override its
    exceptions), bounded (``CHECKS_EXAMPLES`` per operation and phase, ``CHECKS_SECONDS`` in all).
    Strings are valid UTF-8 without NUL: the input rules refuse NUL and lone surrogates (docs/API.md)."""
    command = [str(Path(sys.executable).parent / "st"), "--config-file", str(CHECKS_CONFIG), "--no-color", "run"]
    command += [f"{served.url}/schema/openapi.json", "--header", f"Authorization: Bearer {served.token}"]
    command += ["--max-examples", str(CHECKS_EXAMPLES), "--seed", str(SEED), "--no-shrink"]  # checks: the config's
    command += ["--max-time", str(CHECKS_SECONDS), "--workers", "1", "--generation-codec", "utf-8"]
    command += ["--generation-allow-x00", "false", "--request-timeout", "60"]
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=CHECKS_SECONDS + 300, check=False, cwd=tmp_path
    )
    assert 0 == run.returncode, run.stdout[-20_000:] + run.stderr[-2_000:]
