"""/ledger: the signed checkpoint, the key and proofs verify with the stand-alone auditor's verifier."""

from __future__ import annotations

import base64
import time
from typing import Any

from litestar.testing import TestClient

from qerberos import verifier
from tests.integration.api.conftest import event_body

Client = TestClient[Any]


def test_checkpoint_is_a_signed_note_that_verifies_and_catches_up_within_the_interval(client: Client) -> None:
    client.post("/audit/batch", json=[event_body(n) for n in range(5)])
    key = client.get("/ledger/key").json()["data"]

    sizes: list[int] = []
    deadline = time.monotonic() + 5  # QERBEROS_CHECKPOINT_INTERVAL is 0.2 s in these tests
    while not sizes or (sizes[-1] < 5 and time.monotonic() < deadline):
        response = client.get("/ledger/checkpoint")
        assert 200 == response.status_code
        assert response.headers["content-type"].startswith("text/plain")
        sizes.append(verifier.verify_checkpoint(response.text, [key["verifierKey"]], key["origin"]).size)
        time.sleep(0.05)

    assert 5 == sizes[-1]
    assert sorted(sizes) == sizes


def test_inclusion_proof_by_id_and_by_seq_verifies_against_the_checkpoint(client: Client) -> None:
    created = client.post("/audit/batch", json=[event_body(n) for n in range(7)]).json()["data"]["events"]
    key = client.get("/ledger/key").json()["data"]

    by_id = client.get(f"/ledger/proof/inclusion/{created[3]['id']}").json()["data"]
    by_seq = client.get("/ledger/proof/inclusion/3", params={"treeSize": 7}).json()["data"]

    assert by_id["proof"] == by_seq["proof"]
    assert created[3]["leafHash"] == by_id["leafHash"]
    checkpoint = verifier.verify_checkpoint(by_id["checkpoint"], [key["verifierKey"]], key["origin"])
    verifier.verify_inclusion(
        3, by_id["treeSize"], base64.b64decode(by_id["leafHash"]), _hashes(by_id["proof"]), checkpoint.root_hash
    )


def test_consistency_proof_links_an_old_checkpoint_to_a_new_one(client: Client) -> None:
    client.post("/audit/batch", json=[event_body(n) for n in range(3)])
    key = client.get("/ledger/key").json()["data"]
    old = verifier.verify_checkpoint(
        client.get("/ledger/proof/inclusion/0").json()["data"]["checkpoint"], [key["verifierKey"]], key["origin"]
    )
    client.post("/audit/batch", json=[event_body(n) for n in range(3, 8)])
    new = verifier.verify_checkpoint(
        client.get("/ledger/proof/inclusion/0").json()["data"]["checkpoint"], [key["verifierKey"]], key["origin"]
    )

    proof = client.get("/ledger/proof/consistency", params={"first": old.size, "second": new.size}).json()["data"]

    assert (3, 8) == (proof["first"], proof["second"])
    verifier.verify_consistency(old.size, new.size, old.root_hash, new.root_hash, _hashes(proof["proof"]))


def _hashes(proof: list[str]) -> list[bytes]:
    return [base64.b64decode(item) for item in proof]
