"""A caller who may only write learns nothing of other callers' events: not by reusing an event id or a UUID
Idempotency-Key, nor by asking for an inclusion proof by id. On SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from models.schema import prepare
from qerberos.settings import Settings
from tests.conftest import make_settings
from tests.integration.api.conftest import event_body, make_token

Client = TestClient[Any]


@dataclasses.dataclass(frozen=True)
class Callers:
    client: Client
    alice: dict[str, str]  # may write and read
    mallory: dict[str, str]  # may only write


@pytest.fixture
def callers(backend_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callers]:
    monkeypatch.setenv("QERBEROS_AUTH_MODE", "local")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    url = None if backend_settings.is_sqlite else backend_settings.database_url
    settings = make_settings(monkeypatch, backend_settings.home, url)
    prepare(settings).close()
    alice = make_token(settings, "alice", ["qerberos:audit:write", "audit:read"])
    mallory = make_token(settings, "mallory", ["qerberos:audit:write"])
    with TestClient(create_app(settings)) as client:
        yield Callers(client, {"Authorization": f"Bearer {alice}"}, {"Authorization": f"Bearer {mallory}"})


def test_another_callers_event_id_answers_a_conflict_that_describes_nothing(callers: Callers) -> None:
    client, alice, mallory = callers.client, callers.alice, callers.mallory
    event_id = str(uuid.uuid4())
    first = client.post("/audit", json=event_body(1, id=event_id), headers=alice)

    exact_copy = client.post("/audit", json=event_body(1, id=event_id), headers=mallory)
    wrong_guess = client.post("/audit", json=event_body(2, id=event_id), headers=mallory)
    by_key = client.post("/audit", json=event_body(1), headers=mallory | {"Idempotency-Key": event_id})
    in_a_batch = client.post("/audit/batch", json=[event_body(1, id=event_id)], headers=mallory)
    own_retry = client.post("/audit", json=event_body(1, id=event_id), headers=alice)

    taken = (409, "CONFLICT", f"event id {event_id} is already taken", {"index": 0, "id": event_id})
    answers = [exact_copy, wrong_guess, by_key, in_a_batch]
    assert [taken] * 4 == [(r.status_code, r.json()["code"], r.json()["message"], r.json()["details"]) for r in answers]
    assert (201, first.json()["data"]) == (own_retry.status_code, own_retry.json()["data"])
    assert 1 == client.get("/audit", headers=alice).json()["data"]["totalCount"]


def test_an_inclusion_proof_by_id_needs_audit_read_and_by_sequence_number_does_not(callers: Callers) -> None:
    client, alice, mallory = callers.client, callers.alice, callers.mallory
    created = client.post("/audit", json=event_body(1), headers=alice).json()["data"]

    by_id = client.get(f"/ledger/proof/inclusion/{created['id']}", headers=mallory)
    unknown_id = client.get(f"/ledger/proof/inclusion/{uuid.uuid4()}", headers=mallory)
    by_seq = client.get(f"/ledger/proof/inclusion/{created['seq']}", headers=mallory)
    reader = client.get(f"/ledger/proof/inclusion/{created['id']}", headers=alice)

    assert [(403, "QONSENT_DENIED")] * 2 == [(r.status_code, r.json()["code"]) for r in (by_id, unknown_id)]
    assert (200, 200) == (by_seq.status_code, reader.status_code)
    assert by_seq.json()["data"] == reader.json()["data"]
