"""Validators for the upstream contract, from its facts kept in ``tests/fixtures/upstream-contract.json``
(regenerated from ``../shared/upstream`` by ``tests/fixtures/upstream_contract.py``)."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema

CONTRACT_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "upstream-contract.json"
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
# Fields qerberos adds to a stored AuditEvent (docs/API.md); the upstream schema forbids extra fields.
EVENT_ADDITIONS = frozenset({"seq", "leafHash", "receivedAt", "detailsCommitment"})


@functools.cache
def upstream() -> dict[str, Any]:
    """The contract's facts: ``operations``, ``schemas``, ``contracts``, ``runbookHealthExample``."""
    facts: dict[str, Any] = json.loads(CONTRACT_FILE.read_text(encoding="utf-8"))
    return facts


def openapi_component(name: str) -> jsonschema.Validator:
    """A validator for ``#/components/schemas/<name>`` of the upstream openapi.yaml."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": upstream()["schemas"]}}
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def contract_schema(file_name: str) -> dict[str, Any]:
    schema: dict[str, Any] = upstream()["contracts"][file_name]
    return schema


def json_contract(file_name: str) -> jsonschema.Validator:
    schema = contract_schema(file_name)
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def runbook_health_example() -> dict[str, Any]:
    """The JSON block under "Expected Responses" in the runbook."""
    example: dict[str, Any] = upstream()["runbookHealthExample"]
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
            # our addition (docs/API.md), absent when healthy: why it is degraded or unhealthy
            "reasons": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        },
    }
)


def assert_valid(validator: jsonschema.Validator, instance: Any) -> None:
    errors = [f"{'.'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in validator.iter_errors(instance)]
    assert [] == errors


def as_upstream_event(event: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key not in EVENT_ADDITIONS}
