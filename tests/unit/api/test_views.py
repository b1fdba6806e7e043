"""Answers built from ledger records: the exact JSON text of the contract, ids and hashes written by msgspec."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

import msgspec
import pytest

from api import metrics
from api.schemas import created_view, event_view
from models.records import Actor, AppendResult, LedgerRecord

_OCCURRED = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
_RECEIVED = dt.datetime(2026, 1, 2, 3, 4, 6, 1000, tzinfo=dt.UTC)


def _record(seq: int = 7, *, layer: str = "qdrive", verdict: str = "ALLOW") -> LedgerRecord:
    return LedgerRecord(
        seq=seq,
        id=uuid.UUID("0b9e4a4e-2d8c-4f6e-9a3b-6c1d2e3f4a5b"),
        type="access",
        ref="file:doc-1",
        actor=Actor("did:squid:user1", "work"),
        layer=layer,
        verdict=verdict,  # type: ignore[arg-type]
        details={"operation": "download", "n": 1},
        details_commitment="sha256:" + "ab" * 32,
        cid=None,
        occurred_at=_OCCURRED,
        received_at=_RECEIVED,
        source="local:tests",
        leaf_hash=bytes(range(32)),
        chain_hash=bytes(32),
    )


def test_created_view_writes_the_id_as_text_and_the_leaf_hash_as_standard_base64() -> None:
    expected = {
        "id": "0b9e4a4e-2d8c-4f6e-9a3b-6c1d2e3f4a5b",
        "timestamp": "2026-01-02T03:04:05.678Z",
        "seq": 7,
        "leafHash": base64.b64encode(bytes(range(32))).decode(),
    }
    assert expected == json.loads(msgspec.json.encode(created_view(AppendResult(_record(), created=True))))


def test_event_view_is_the_stored_event_in_the_contract_spelling() -> None:
    expected = {
        "id": "0b9e4a4e-2d8c-4f6e-9a3b-6c1d2e3f4a5b",
        "type": "access",
        "ref": "file:doc-1",
        "actor": {"squidId": "did:squid:user1", "subId": "work"},
        "layer": "qdrive",
        "verdict": "ALLOW",
        "timestamp": "2026-01-02T03:04:05.678Z",
        "seq": 7,
        "leafHash": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "receivedAt": "2026-01-02T03:04:06.001Z",
        "detailsCommitment": "sha256:" + "ab" * 32,
        "details": {"operation": "download", "n": 1},
    }
    assert expected == json.loads(msgspec.json.encode(event_view(_record())))


def test_ingested_events_are_counted_by_layer_and_verdict_once_per_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_layers_seen", set())
    metrics.EVENTS_INGESTED.clear()
    results = [
        AppendResult(_record(1, verdict="ALLOW"), created=True),
        AppendResult(_record(2, verdict="DENY"), created=True),
        AppendResult(_record(3, verdict="ALLOW"), created=True),
        AppendResult(_record(4, verdict="ALLOW"), created=False),  # an idempotent replay is not new
        AppendResult(_record(5, layer="qmail", verdict="WARN"), created=True),
    ]

    metrics.record_ingested(results)

    counted = {
        (sample.labels["layer"], sample.labels["verdict"]): sample.value
        for family in metrics.EVENTS_INGESTED.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    }
    assert {("qdrive", "ALLOW"): 2.0, ("qdrive", "DENY"): 1.0, ("qmail", "WARN"): 1.0} == counted
    assert _RECEIVED.timestamp() == metrics.LAST_INGEST._value.get()
