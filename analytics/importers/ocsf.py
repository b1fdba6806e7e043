"""OCSF 1.x events as a SIEM or Amazon Security Lake hands them over (JSON lines, or an array), of the classes
the taxonomy knows (Authentication, Account Change, API Activity, File System Activity, ...).

The source has classified the event already: ``type`` is ``ocsf.<class_uid>.<activity_id>``, which the
taxonomy's ``ocsf_prefix`` turns back into that class and activity (``config/taxonomy.toml``), and ``layer`` is
the reporting product (``metadata.product.name``).

- ``actor`` the acting user (``actor.user``: ``uid``, ``email_addr``, ``name``), else the event's ``user`` (whom an
  Authentication event signs in), else the source endpoint; ``daoId`` the cloud account (``cloud.account.uid``);
- ``verdict`` from ``status_id``: 1 ALLOW, 2 DENY, anything else WARN;
- ``timestamp`` ``time`` (epoch milliseconds) or ``time_dt``; the id is derived from ``metadata.uid``;
- ``ip`` ``src_endpoint.ip``, ``country`` ``src_endpoint.location.country``, ``user_agent``
  ``http_request.user_agent``, ``resource`` the file, API operation, web resource or resource the event names.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from analytics.importers.fields import clean_ip, event, stable_id

FORMAT = "ocsf"
TYPE_PREFIX = "ocsf."


def map_record(record: Mapping[str, Any]) -> dict[str, Any]:
    class_uid, activity_id = record.get("class_uid"), record.get("activity_id")
    if not isinstance(class_uid, int) or not isinstance(activity_id, int):
        raise ValueError("class_uid and activity_id must be integers")
    metadata = _object(record, "metadata")
    product = _object(metadata, "product")
    source = _object(record, "src_endpoint")
    actor = _user(_object(_object(record, "actor"), "user")) or _user(_object(record, "user"))
    actor = actor or (f"ip:{source['ip']}" if source.get("ip") else "ocsf:unknown")
    uid = metadata.get("uid")
    status_id = record.get("status_id")
    return event(
        type_=f"{TYPE_PREFIX}{class_uid}.{activity_id}",
        layer=str(product.get("name") or product.get("vendor_name") or "ocsf"),
        actor=actor,
        dao_id=_object(_object(record, "cloud"), "account").get("uid"),
        verdict="ALLOW" if status_id == 1 else "DENY" if status_id == 2 else "WARN",
        timestamp=_time(record),
        ref=_resource(record) or f"ocsf:{class_uid}",
        event_id=stable_id(FORMAT, str(uid)) if uid else None,
        ip=clean_ip(source.get("ip")),
        country=_object(source, "location").get("country"),
        user_agent=_object(record, "http_request").get("user_agent"),
        resource=_resource(record),
        reason=record.get("status_detail") or (record.get("status") if status_id == 2 else None),
    )


def _object(parent: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = parent.get(name)
    return value if isinstance(value, Mapping) else {}


def _user(user: Mapping[str, Any]) -> str | None:
    value = user.get("email_addr") or user.get("uid") or user.get("name")
    return str(value) if value else None


def _time(record: Mapping[str, Any]) -> str:
    millis = record.get("time")
    if isinstance(millis, int) and not isinstance(millis, bool):
        return dt.datetime.fromtimestamp(millis / 1000, dt.UTC).isoformat()
    if isinstance(record.get("time_dt"), str):
        return str(record["time_dt"])
    raise ValueError("time (epoch milliseconds) or time_dt is missing")


def _resource(record: Mapping[str, Any]) -> str | None:
    file = _object(record, "file")
    api = _object(record, "api")
    resources = record.get("resources") or record.get("web_resources") or []
    first = resources[0] if isinstance(resources, list) and resources and isinstance(resources[0], Mapping) else {}
    found = (
        file.get("path")
        or file.get("name")
        or first.get("uid")
        or first.get("url_string")
        or first.get("name")
        or api.get("operation")
    )
    return str(found) if found else None
