"""The service's side of trust that does not rest on its database: the checkpointer refuses a rewritten
tail and counts it in /metrics; the signed checkpoint is public."""

from __future__ import annotations

import time
from typing import Any

from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from models.ledger import Ledger, checkpoint_size
from models.signing import LogSigner
from qerberos import verifier
from qerberos.settings import Settings
from tests.integration.api.conftest import METRICS_TOKEN, event_body
from tests.integration.ledger.helpers import as_attacker, event

Client = TestClient[Any]


def _wait_for(condition: Any, what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds  # the checkpointer runs every 0.2 s in these tests
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _refusals(client: Client) -> float:
    text = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    return sum(s.value for s in samples if s.name == "qerberos_checkpoint_refusals_total")


def test_the_checkpointer_refuses_a_rewritten_tail_and_counts_it(client: Client, api_settings: Settings) -> None:
    client.post("/audit/batch", json=[event_body(n) for n in range(10)])
    _wait_for(lambda: checkpoint_size(client.get("/ledger/checkpoint").text) == 10, "a checkpoint of 10")
    before = _refusals(client)
    with Ledger.from_settings(api_settings) as attacker:
        nodes = [f"DELETE FROM merkle_nodes WHERE level = {level} AND idx >= {6 >> level}" for level in (1, 2, 3)]
        as_attacker(attacker, "DELETE FROM ledger_entries WHERE seq >= 6", "DELETE FROM event_details WHERE seq >= 6")
        as_attacker(attacker, *nodes, "DELETE FROM checkpoints WHERE size > 6")
        Ledger(attacker.engine, LogSigner(attacker.origin, [], [])).append([event(n) for n in range(6, 11)])
    _wait_for(lambda: _refusals(client) > before, "a refused checkpoint")
    with Ledger.from_settings(api_settings) as ledger:
        assert (11, []) == (ledger.size(), [note for note in ledger.checkpoints() if checkpoint_size(note) > 6])


def test_the_checkpoint_is_public_plain_text_that_verifies(app_client: Client, client: Client) -> None:
    """``app_client`` carries no credentials; ``client`` is the same app's authenticated caller."""
    client.post("/audit/batch", json=[event_body(n) for n in range(4)])
    key = client.get("/ledger/key").json()["data"]
    _wait_for(lambda: app_client.get("/checkpoint").status_code == 200, "a checkpoint")
    _wait_for(lambda: checkpoint_size(app_client.get("/checkpoint").text) == 4, "a checkpoint of 4")
    anonymous = app_client.get("/checkpoint")
    assert ("text/plain; charset=utf-8", "public, max-age=2") == (
        anonymous.headers["content-type"],
        anonymous.headers["cache-control"],
    )
    assert 4 == verifier.verify_checkpoint(anonymous.text, key["verifierKeys"], key["origin"]).size
