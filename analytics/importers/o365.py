"""The Office 365 unified audit log, as the Management Activity API hands it out (arrays of records, or one
record per line), in its common schema.

- ``type`` ``Operation`` (``UserLoggedIn``, ``FileDownloaded``, ``Add member to role.``, ...), ``layer``
  ``Workload`` (``AzureActiveDirectory``, ``SharePoint``, ``Exchange``, ...);
- ``actor`` ``UserId`` (a UPN, a service principal, ``app@sharepoint``), else ``UserKey``; ``daoId``
  ``OrganizationId``;
- ``verdict`` DENY when ``ResultStatus`` says it failed (``Failed``, ``Failure``, ``False``) or the record names a
  ``LogonError``, else ALLOW;
- ``ip`` ``ClientIP`` (else ``ActorIpAddress``; a port, IPv6 brackets are removed), ``user_agent``
  ``UserAgent`` or the ``UserAgent`` of ``ExtendedProperties``, ``resource`` ``ObjectId``, ``reason``
  ``LogonError``;
- ``CreationTime`` is UTC without a zone designator: it is read as UTC; the id is derived from ``Id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from analytics.importers.fields import clean_ip, event, required_text, stable_id

FORMAT = "o365"
_FAILED = frozenset({"failed", "failure", "false"})


def map_record(record: Mapping[str, Any]) -> dict[str, Any]:
    operation = required_text(record, "Operation")
    created = required_text(record, "CreationTime")
    actor = record.get("UserId") or record.get("UserKey") or "o365:unknown"
    status = str(record.get("ResultStatus") or "")
    logon_error = record.get("LogonError")
    failed = status.lower() in _FAILED or bool(logon_error)
    record_id = record.get("Id")
    return event(
        type_=operation,
        layer=str(record.get("Workload") or "o365"),
        actor=str(actor),
        dao_id=record.get("OrganizationId"),
        verdict="DENY" if failed else "ALLOW",
        timestamp=_utc(created),
        ref=str(record.get("ObjectId") or f"o365:{record.get('Workload', '')}"),
        event_id=stable_id(FORMAT, str(record_id)) if record_id else None,
        ip=clean_ip(record.get("ClientIP")) or clean_ip(record.get("ActorIpAddress")),
        user_agent=record.get("UserAgent") or _extended(record, "UserAgent"),
        resource=record.get("ObjectId"),
        reason=logon_error or (status if failed else None),
        user_type=record.get("UserType"),
    )


def _utc(created: str) -> str:
    """The common schema's ``CreationTime`` carries no zone and is UTC; a zone, when present, is kept."""
    has_zone = created.endswith("Z") or "+" in created[10:] or created[10:].count("-") > 0
    return created if has_zone else f"{created}Z"


def _extended(record: Mapping[str, Any], name: str) -> str | None:
    for pair in record.get("ExtendedProperties") or []:
        if isinstance(pair, Mapping) and pair.get("Name") == name and isinstance(pair.get("Value"), str):
            return str(pair["Value"])
    return None
