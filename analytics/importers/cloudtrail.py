"""AWS CloudTrail records (``eventVersion`` 1.x): a log file's ``{"Records": [...]}`` or one record per line.

- ``type`` ``eventName``, ``layer`` ``eventSource`` (``signin.amazonaws.com``, ``iam.amazonaws.com``, ...);
- ``actor`` from ``userIdentity``: its ``arn`` (an assumed role's session ARN names the role and the session),
  else the service that acted (``invokedBy``, an ``AWSService``), else the principal id, else ``aws:anonymous``
  (a record with no identity at all); ``subId`` the session issuer's ARN (the role behind a session), ``daoId``
  the account (peers are the identities of one account);
- ``verdict`` DENY when the record has an ``errorCode`` or a console sign-in failed
  (``responseElements.ConsoleLogin`` = ``Failure``), else ALLOW;
- ``ip`` ``sourceIPAddress`` when it is an address (a service's name is kept as ``source_service``),
  ``user_agent`` ``userAgent``, ``resource`` the first resource's ARN, ``reason`` ``errorCode``/``errorMessage``;
- the id is derived from ``eventID``, so a record imported twice is appended once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from analytics.importers.fields import clean_ip, event, required_text, stable_id

FORMAT = "cloudtrail"


def map_record(record: Mapping[str, Any]) -> dict[str, Any]:
    identity = record.get("userIdentity") or {}
    if not isinstance(identity, Mapping):
        raise ValueError("userIdentity must be an object")
    session = (identity.get("sessionContext") or {}).get("sessionIssuer") or {}
    response = record.get("responseElements")
    console_failed = isinstance(response, Mapping) and response.get("ConsoleLogin") == "Failure"
    failed = bool(record.get("errorCode")) or console_failed
    resource = _resource(record)
    source_ip = record.get("sourceIPAddress")
    ip = clean_ip(source_ip)
    event_id = record.get("eventID")
    return event(
        type_=required_text(record, "eventName"),
        layer=required_text(record, "eventSource"),
        actor=_actor(identity),
        sub_id=session.get("arn"),
        dao_id=identity.get("accountId") or record.get("recipientAccountId"),
        verdict="DENY" if failed else "ALLOW",
        timestamp=required_text(record, "eventTime"),
        ref=resource or f"{record.get('eventSource')}:{record.get('awsRegion', '')}",
        event_id=stable_id(FORMAT, str(event_id)) if event_id else None,
        ip=ip,
        source_service=None if ip else source_ip,
        user_agent=record.get("userAgent"),
        resource=resource,
        region=record.get("awsRegion"),
        reason=record.get("errorCode") or (record.get("errorMessage") if console_failed else None),
        identity_type=identity.get("type"),
    )


def _actor(identity: Mapping[str, Any]) -> str:
    """The identity's ARN, else the service that acted, else its principal id, else its type."""
    actor = (
        identity.get("arn")
        or identity.get("invokedBy")
        or identity.get("principalId")
        or ("aws:" + identity["type"] if identity.get("type") else "aws:anonymous")
    )
    return str(actor)


def _resource(record: Mapping[str, Any]) -> str | None:
    """The first resource's ARN."""
    resources = record.get("resources") or []
    return next((r.get("ARN") for r in resources if isinstance(r, Mapping) and r.get("ARN")), None)
