"""What every importer shares: the event it produces, its failure naming a line, and the helpers that keep the
mapped values within what the ledger stores (names of at most 100 characters, refs of 500)."""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ImportFailure",
    "ImportedEvent",
    "bounded",
    "clean_ip",
    "event",
    "record_text",
    "stable_id",
]

_NAME_MAX = 100
_REF_MAX = 500
_IPV4 = re.compile(r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}")
_NAMESPACE = uuid.UUID("0b7e3c52-9f1e-5a0d-8c43-1f6a2d9e7b10")


class ImportFailure(ValueError):
    """A source record that cannot be mapped: ``line`` (1-based) and what is wrong."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclasses.dataclass(frozen=True, slots=True)
class ImportedEvent:
    """An audit event in the upstream JSON shape (``event``) mapped from the record at ``line``."""

    line: int
    event: dict[str, Any]


def record_text(record: Mapping[str, Any]) -> str:
    """A record as compact JSON text, for one that came without a line of its own (an item of a document)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def bounded(value: str, limit: int = _NAME_MAX) -> str:
    """``value`` if it fits in ``limit`` characters, else its head and a digest of the whole (still one value
    per distinct input: an identity is never merged with another by truncation)."""
    if len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:16]
    return f"{value[: limit - 17]}~{digest}"


def required_text(record: Mapping[str, Any], name: str) -> str:
    """``record[name]``, a non-empty string; else ``ValueError`` naming it."""
    value = record.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is missing")
    return value


def stable_id(source: str, key: str) -> str:
    """The event id of a source record with its own id ``key``: the same record always maps to the same event."""
    return str(uuid.uuid5(_NAMESPACE, f"{source}:{key}"))


def clean_ip(value: Any) -> str | None:
    """An IPv4 or IPv6 address from a source field that may carry a port (``1.2.3.4:5678``, ``[::1]:443``) or
    be a name (CloudTrail's ``sourceIPAddress`` of an AWS service); None when it is not an address."""
    if not isinstance(value, str) or not value:
        return None
    if _IPV4.fullmatch(value):  # the common case, without ipaddress's parsing
        return value
    text = value.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text[1:]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def event(
    *,
    type_: str,
    layer: str,
    actor: str,
    verdict: str,
    timestamp: str,
    ref: str,
    record: str | None = None,
    event_id: str | None = None,
    sub_id: str | None = None,
    dao_id: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """The upstream event JSON: the normalised ``fields`` (``ip``, ``country``, ``user_agent``, ``device``,
    ``resource``, ``reason``, ...; None left out) in ``details``, and the source ``record`` as text in
    ``details.source_record`` (a JSON record's text is set by ``registry.import_events``: the line it came on,
    else its JSON), text because a record nests as deep as its source likes and details at most 8 levels."""
    details = {name: value for name, value in fields.items() if value not in (None, "")}
    if record is not None:
        details["source_record"] = record
    identity = {"squidId": bounded(actor or "unknown")}
    if sub_id:
        identity["subId"] = bounded(sub_id)
    if dao_id:
        identity["daoId"] = bounded(dao_id)
    mapped: dict[str, Any] = {
        "type": bounded(type_ or "unknown"),
        "ref": bounded(ref or layer or "unknown", _REF_MAX),
        "actor": identity,
        "layer": bounded(layer or "unknown"),
        "verdict": verdict,
        "timestamp": timestamp,
        "details": details,
    }
    if event_id is not None:
        mapped["id"] = event_id
    return mapped
