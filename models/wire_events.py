"""The upstream request shape of an audit event, decoded and validated in one place.

``AuditEventRequest`` is the contract's ``AuditEventRequest`` (plus the optional ``id`` and
``timestamp``). The API and ``qerberos ingest`` both decode with :func:`decode_event`: the text is read as
strict JSON (``qerberos.json_input``: no duplicate member names, no NUL or lone surrogate, bounded nesting),
converted by msgspec, and on failure checked by a JSON-Schema pass (the schema msgspec derives from the same
Struct) that names every failing field, not only the first.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec

from models.records import ERASURE_TYPE, OWN_LAYER, Actor, NewEvent
from qerberos.errors import PayloadTooLargeError, ValidationError
from qerberos.json_input import read_json

MAX_DETAILS_DEPTH = 8
MAX_DETAILS_BYTES = 64 * 1024

_CID_PATTERN = r"^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{58,})$"
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class IdentityRef(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="camel"):
    squid_id: _Name
    sub_id: _Name | None = None
    dao_id: _Name | None = None


class AuditEventRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="camel"):
    type: _Name
    ref: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    actor: IdentityRef
    layer: _Name
    verdict: Literal["ALLOW", "DENY", "WARN"]
    details: dict[str, Any] | None = None
    cid: Annotated[str, msgspec.Meta(pattern=_CID_PATTERN)] | None = None
    id: uuid.UUID | None = None
    timestamp: Annotated[dt.datetime, msgspec.Meta(tz=True)] | None = None

    def to_new_event(self, source: str) -> NewEvent:
        return NewEvent(
            type=self.type,
            ref=self.ref,
            actor=Actor(self.actor.squid_id, self.actor.sub_id, self.actor.dao_id),
            layer=self.layer,
            verdict=self.verdict,
            source=source,
            details=self.details,
            cid=self.cid,
            id=self.id,
            occurred_at=self.timestamp,
        )


_converter_schema = msgspec.json.schema(AuditEventRequest)


@functools.cache
def _validator() -> Any:
    """The JSON-Schema validator of a refused event, built on the first refusal: jsonschema costs about a
    second and some megabytes to import, which a process that is only sent valid events never pays."""
    import jsonschema

    return jsonschema.Draft202012Validator(_converter_schema)


def decode_event(raw: bytes | str) -> AuditEventRequest:
    """Decode one JSON event; raise ``ValidationError`` naming every failing field."""
    return convert_event(read_json(raw))


def convert_event(obj: Any) -> AuditEventRequest:
    """Validate a JSON value that ``read_json`` parsed (an event, or an item of a batch)."""
    try:
        event = msgspec.convert(obj, AuditEventRequest, strict=True)
    except msgspec.ValidationError as exc:
        raise _field_errors(obj, str(exc)) from exc
    check_reserved(event)
    check_details(event.details)
    return event


def check_reserved(event: AuditEventRequest) -> None:
    """Refuse what only qerberos may write: its own layer, and the erasure type that licenses deleting details.

    A caller's ``gdpr.erasure`` would make ``verify`` (and the database's delete guard) accept the loss of an
    identity's details as a recorded erasure; a caller's ``qerberos`` layer would pass for our own alerts and
    risk changes.
    """
    reserved: dict[str, str] = {}
    if event.type.casefold() == ERASURE_TYPE:
        reserved["type"] = f"{ERASURE_TYPE} is appended by qerberos erase only"
    if event.layer.casefold() == OWN_LAYER:
        reserved["layer"] = f"the {OWN_LAYER} layer holds qerberos's own events only"
    if reserved:
        raise ValidationError("reserved for qerberos's own events", details=reserved)


def check_details(details: Mapping[str, Any] | None) -> None:
    """Bound a details object in nesting depth and encoded size."""
    if details is None:
        return
    if _depth(details) > MAX_DETAILS_DEPTH:
        raise ValidationError(
            "details nest too deeply", details={"details": f"at most {MAX_DETAILS_DEPTH} levels of nesting"}
        )
    size = len(msgspec.json.encode(details))
    if size > MAX_DETAILS_BYTES:
        raise PayloadTooLargeError(
            "details too large", details={"details": f"{size} bytes, at most {MAX_DETAILS_BYTES}"}
        )


def _depth(value: Mapping[str, Any] | list[Any]) -> int:
    """Levels of nesting of decoded JSON (objects are dicts, arrays lists); scalars cost no call."""
    deepest = 0
    for child in value.values() if isinstance(value, Mapping) else value:
        if isinstance(child, (dict, list)):
            deepest = max(deepest, _depth(child))
    return 1 + deepest


def _field_errors(parsed: Any, first_error: str) -> ValidationError:
    errors: dict[str, str] = {}
    for error in _validator().iter_errors(parsed):
        path = ".".join(str(part) for part in error.absolute_path) or "$"
        prefix = f"{path}." if path != "$" else ""
        if error.validator == "required":
            for name in error.validator_value:
                if isinstance(error.instance, dict) and name not in error.instance:
                    errors[f"{prefix}{name}"] = "required field missing"
            continue
        if error.validator == "additionalProperties":
            known = set(error.schema.get("properties", {}))
            for name in sorted(set(error.instance) - known):
                errors[f"{prefix}{name}"] = "unknown field"
            continue
        errors.setdefault(path, error.message)
    if not errors:
        message, _, where = first_error.partition(" - at `$")
        errors[where.strip("`.").replace("[", ".").replace("]", "") or "$"] = message
    return ValidationError("invalid audit event", details=errors)
