"""Microsoft Entra ID (Azure AD) sign-in logs: Microsoft Graph ``signIn`` objects (a page's ``{"value": [...]}``,
an array, one per line) or the diagnostic-settings form (``{"category": "SignInLogs", "properties": {...}}``).

- ``type`` ``signin`` (a user) or ``serviceprincipal.signin`` (an application's own sign-in), ``layer``
  ``azuread``;
- ``actor`` ``userPrincipalName`` (else ``userId``, else the service principal's id or name); ``daoId`` the
  tenant when the record names it;
- ``verdict`` ALLOW for ``status.errorCode`` 0, WARN for an interrupt (MFA or another step still required:
  50074, 50076, 50079, 50125, 50140, 50158, 50097, 81010), else DENY;
- ``ip`` ``ipAddress`` (IPv4 or IPv6), ``country`` ``location.countryOrRegion``, ``device`` the device's name or
  id, ``user_agent`` ``userAgent`` (beta API) or the browser, ``resource`` the application, ``reason``
  ``status.failureReason``, ``conditional_access`` ``conditionalAccessStatus``;
- the id is derived from the sign-in's ``id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from analytics.importers.fields import clean_ip, event, stable_id

FORMAT = "azuread-signin"
#: Error codes that interrupt a sign-in rather than refuse it (the user must still do something).
INTERRUPTS = frozenset({50074, 50076, 50079, 50097, 50125, 50140, 50158, 81010})


def map_record(record: Mapping[str, Any]) -> dict[str, Any]:
    properties = record.get("properties")
    signin: Mapping[str, Any] = properties if isinstance(properties, Mapping) else record
    status = signin.get("status") or {}
    code = _error_code(status.get("errorCode", record.get("resultType")))
    actor, is_user = _actor(signin)
    app = signin.get("appDisplayName") or signin.get("resourceDisplayName") or signin.get("appId")
    record_id = signin.get("id")
    return event(
        type_="signin" if is_user else "serviceprincipal.signin",
        layer="azuread",
        actor=actor,
        dao_id=signin.get("tenantId") or record.get("tenantId"),
        verdict="ALLOW" if code == 0 else "WARN" if code in INTERRUPTS else "DENY",
        timestamp=_created(signin, record),
        ref=f"azuread:app:{signin.get('appId') or app or 'unknown'}",
        event_id=stable_id(FORMAT, str(record_id)) if record_id else None,
        **_access(signin),
        resource=app,
        reason=None if code == 0 else (status.get("failureReason") or str(code)),
        error_code=code,
        conditional_access=signin.get("conditionalAccessStatus"),
        client_app=signin.get("clientAppUsed"),
    )


def _actor(signin: Mapping[str, Any]) -> tuple[str, bool]:
    """The user who signed in (and True), else the service principal (and False)."""
    user = signin.get("userPrincipalName") or signin.get("userId")
    actor = user or signin.get("servicePrincipalId") or signin.get("servicePrincipalName")
    if not actor:
        raise ValueError("neither userPrincipalName, userId nor a service principal is given")
    return str(actor), bool(user)


def _created(signin: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    created = signin.get("createdDateTime") or record.get("time")
    if not isinstance(created, str):
        raise ValueError("createdDateTime is missing")
    return created


def _access(signin: Mapping[str, Any]) -> dict[str, Any]:
    """Where the sign-in came from: address, place, device and client."""
    location = signin.get("location") or {}
    device = signin.get("deviceDetail") or {}
    return {
        "ip": clean_ip(signin.get("ipAddress")),
        "country": location.get("countryOrRegion") or None,
        "city": location.get("city") or None,
        "device": device.get("displayName") or device.get("deviceId") or None,
        "user_agent": signin.get("userAgent") or device.get("browser") or None,
    }


def _error_code(value: Any) -> int:
    if isinstance(value, bool) or value is None:
        raise ValueError("status.errorCode is missing")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"status.errorCode is not a number: {value!r}") from exc
