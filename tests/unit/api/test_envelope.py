"""The ok envelope, timestamps, OpenAPI bodies and bounded metric labels."""

from __future__ import annotations

import datetime as dt
import json

import msgspec
import pytest

from api import metrics
from api.envelope import iso_timestamp, ok
from api.openapi.document import msgspec_components
from api.openapi_bodies import EVENT_SCHEMA


def test_timestamps_are_utc_iso_8601_with_milliseconds() -> None:
    moment = dt.datetime(2024, 2, 8, 16, 30, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert "2024-02-08T15:30:00.123Z" == iso_timestamp(moment)


def test_ok_envelope_has_the_contract_fields_in_order() -> None:
    encoded = json.loads(msgspec.json.encode(ok({"id": "x"}, code="CREATED", message="made")))
    assert ["status", "code", "message", "data", "timestamp"] == list(encoded)
    assert ("ok", "CREATED", {"id": "x"}) == (encoded["status"], encoded["code"], encoded["data"])


def test_event_body_is_the_component_msgspec_derives_from_the_decoding_type() -> None:
    components = msgspec_components()
    event = components[EVENT_SCHEMA["$ref"].rsplit("/", 1)[-1]]
    assert {"type", "ref", "actor", "layer", "verdict"} <= set(event["required"])
    assert {"$ref": "#/components/schemas/IdentityRef"} == event["properties"]["actor"]
    assert "$defs" not in json.dumps(components)


def test_layer_labels_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_layers_seen", set())
    labels = {metrics._layer_label(f"layer-{n}") for n in range(500)}
    assert len(labels) <= 65
    assert "other" in labels
