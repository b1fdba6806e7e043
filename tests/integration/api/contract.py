"""Validators for the upstream contract in ``../shared/upstream`` (read from disk, never copied)."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

UPSTREAM = Path(__file__).resolve().parents[3] / ".." / "shared" / "upstream"
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
# Fields qerberos adds to a stored AuditEvent (docs/API.md); the upstream schema forbids extra fields.
EVENT_ADDITIONS = frozenset({"seq", "leafHash", "receivedAt", "detailsCommitment"})


@functools.cache
def _openapi() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((UPSTREAM / "openapi.yaml").read_text())
    return document


def openapi_component(name: str) -> jsonschema.Validator:
    """A validator for ``#/components/schemas/<name>`` of the upstream openapi.yaml."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": _openapi()["components"]}
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def json_contract(file_name: str) -> jsonschema.Validator:
    schema = json.loads((UPSTREAM / "contracts" / file_name).read_text())
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def runbook_health_example() -> dict[str, Any]:
    """The JSON block under "Expected Responses" in the runbook."""
    text = (UPSTREAM / "runbook.md").read_text()
    block = text.split("### Expected Responses", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    example: dict[str, Any] = json.loads(block)
    return example


_DEPENDENCY = {
    "type": "object",
    "required": ["status", "latency"],
    "properties": {"status": {"enum": ["up", "down"]}, "latency": {"type": "number", "minimum": 0}},
}
RUNBOOK_HEALTH = jsonschema.Draft7Validator(
    {
        "type": "object",
        "required": ["status", "timestamp", "version", "dependencies"],
        "additionalProperties": False,
        "properties": {
            "status": {"enum": ["healthy", "degraded", "unhealthy"]},
            "timestamp": {"type": "string"},
            "version": {"type": "string"},
            "dependencies": {
                "type": "object",
                "required": ["squid", "qonsent"],
                "additionalProperties": False,
                "properties": {"squid": _DEPENDENCY, "qonsent": _DEPENDENCY},
            },
        },
    }
)


def assert_valid(validator: jsonschema.Validator, instance: Any) -> None:
    errors = [f"{'.'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in validator.iter_errors(instance)]
    assert [] == errors


def as_upstream_event(event: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key not in EVENT_ADDITIONS}
