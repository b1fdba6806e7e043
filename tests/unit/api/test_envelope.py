"""The ok envelope, timestamps, OpenAPI bodies and bounded metric labels."""

from __future__ import annotations

import datetime as dt
import json

import msgspec
import pytest

from api import metrics
from api.envelope import iso_timestamp, ok
from api.openapi_bodies import EVENT_SCHEMA


def test_timestamps_are_utc_iso_8601_with_milliseconds() -> None:
    moment = dt.datetime(2024, 2, 8, 16, 30, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert "2024-02-08T15:30:00.123Z" == iso_timestamp(moment)


def test_ok_envelope_has_the_contract_fields_in_order() -> None:
    encoded = json.loads(msgspec.json.encode(ok({"id": "x"}, code="CREATED", message="made")))
    assert ["status", "code", "message", "data", "timestamp"] == list(encoded)
    assert ("ok", "CREATED", {"id": "x"}) == (encoded["status"], encoded["code"], encoded["data"])


def test_event_body_schema_is_inline_for_openapi() -> None:
    assert "$ref" not in json.dumps(EVENT_SCHEMA)
    assert {"type", "ref", "actor", "layer", "verdict"} <= set(EVENT_SCHEMA["required"])


def test_layer_labels_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_layers_seen", set())
    labels = {metrics._layer_label(f"layer-{n}") for n in range(500)}
    assert len(labels) <= 65
    assert "other" in labels
