"""``docs/asyncapi.yaml`` is a valid AsyncAPI 3.0.0 document, names a channel for every event the publisher
sends, and its message payloads are the very schemas the publisher's events are checked against."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from pipelines.events import EVENT_TYPES, event_schema

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "asyncapi.yaml"
ASYNCAPI_SCHEMA = ROOT / "tests" / "fixtures" / "asyncapi-3.0.0.schema.json"


def _document() -> dict[str, object]:
    loaded: dict[str, object] = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    return loaded


def test_asyncapi_document_validates_against_the_asyncapi_3_schema() -> None:
    schema = json.loads(ASYNCAPI_SCHEMA.read_text(encoding="utf-8"))
    errors = jsonschema.Draft7Validator(schema).iter_errors(_document())
    assert [] == [f"{list(error.absolute_path)}: {error.message}" for error in errors]


def test_asyncapi_has_one_channel_per_published_event_type() -> None:
    channels = _document()["channels"]
    assert isinstance(channels, dict)
    assert sorted(EVENT_TYPES) == sorted(channel["address"] for channel in channels.values())


def test_asyncapi_message_payloads_are_the_published_event_schemas() -> None:
    messages = _document()["components"]["messages"]  # type: ignore[index]
    referenced = {}
    for message in messages.values():
        _envelope, specific = message["payload"]["allOf"]
        path = (DOCUMENT.parent / specific["properties"]["data"]["$ref"]).resolve()
        referenced[specific["properties"]["type"]["const"]] = json.loads(path.read_text(encoding="utf-8"))
    assert {event_type: event_schema(event_type) for event_type in EVENT_TYPES} == referenced
