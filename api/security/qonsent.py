"""Client of Qonsent's permission check (remote mode).

``POST {qonsent_url}/api/v1/qonsent/check`` ``{resource, identity, action, context}`` ->
``{status, data{allowed, reason}}``.

Permission names map onto ``{resource, action}`` the way the one fully qualified upstream name,
``qerberos:audit:write``, is built: ``<service>:<resource>:<action>``. The short names are in the
``qerberos`` namespace (``audit:read`` -> resource ``qerberos:audit``, action ``read``); ``admin`` is
resource ``qerberos``, action ``admin``. ``identity`` is the caller's squidId; ``context`` carries
``subId``, ``daoId`` and ``service: "qerberos"`` (nothing request-specific, so a decision can be cached).

Deny by default: only ``data.allowed is true`` allows. Decisions (allow and deny) are cached for
``ttl`` seconds. When Qonsent is unreachable (transport error, timeout, 429/5xx, an answer outside the
contract) a cached decision no older than ``ttl + grace`` seconds still answers; beyond that,
``DependencyUnavailableError``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import httpx

from api.security._cache import Clock, TTLCache
from api.security.caller import Caller
from models.identities import PERMISSIONS
from qerberos.errors import DependencyUnavailableError

logger = logging.getLogger(__name__)


def resource_action(permission: str) -> tuple[str, str]:
    """The Qonsent ``(resource, action)`` of a qerberos permission (``ValueError`` if unknown)."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    if permission == "admin":
        return "qerberos", "admin"
    parts = permission.split(":")
    if parts[0] != "qerberos":
        parts.insert(0, "qerberos")
    return ":".join(parts[:-1]), parts[-1]


PERMISSION_MAP: dict[str, tuple[str, str]] = {name: resource_action(name) for name in PERMISSIONS}


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str


class QonsentClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 2.0,
        ttl: float = 30.0,
        grace: float = 300.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._ttl = ttl
        self._grace = grace
        # Kept past the TTL so that it can serve during the grace time.
        self._decisions: TTLCache[tuple[str, str | None, str | None, str], Decision] = TTLCache(clock=clock)
        self._clock = clock
        self._client: httpx.AsyncClient | None = None

    async def check(self, caller: Caller, permission: str) -> Decision:
        key = (caller.squid_id, caller.sub_id, caller.dao_id, permission)
        entry = self._decisions.entry(key)
        now = self._clock()
        if entry is not None and now - entry.stored_at < self._ttl:
            return entry.value
        try:
            decision = await self._ask(caller, permission)
        except DependencyUnavailableError:
            if entry is not None and now - entry.stored_at < self._ttl + self._grace:
                logger.warning(
                    "Qonsent unavailable: answering %s from a decision %.0f s old", permission, now - entry.stored_at
                )
                return entry.value
            raise
        self._decisions.set(key, decision, self._ttl + self._grace)
        return decision

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _ask(self, caller: Caller, permission: str) -> Decision:
        resource, action = PERMISSION_MAP[permission]
        body = {
            "resource": resource,
            "identity": caller.squid_id,
            "action": action,
            "context": {"subId": caller.sub_id, "daoId": caller.dao_id, "service": "qerberos"},
        }
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self._base_url, timeout=self._timeout)
        try:
            response = await self._client.post("/api/v1/qonsent/check", json=body)
        except httpx.HTTPError as exc:
            logger.warning("Qonsent unreachable at %s: %s", self._base_url, exc.__class__.__name__)
            raise DependencyUnavailableError("Qonsent is unavailable") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise DependencyUnavailableError(f"Qonsent answered {response.status_code}")
        return _decision(response)


def _decision(response: httpx.Response) -> Decision:
    try:
        answer: Any = response.json()
    except ValueError as exc:
        raise DependencyUnavailableError("Qonsent answered outside its contract (not JSON)") from exc
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, dict):
        if 400 <= response.status_code < 500:
            return Decision(False, f"Qonsent refused the check ({response.status_code})")
        raise DependencyUnavailableError("Qonsent answered outside its contract (no data)")
    reason = data.get("reason")
    reason_text = reason if isinstance(reason, str) else ""
    return Decision(data.get("allowed") is True and response.status_code < 400, reason_text)
