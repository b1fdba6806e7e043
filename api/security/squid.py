"""Client of sQuid's verification endpoints (remote mode).

- ``POST {squid_url}/api/v1/auth/verify`` ``{token}`` -> ``{valid, identity{squidId, subId, daoId}, expiresAt}``
- ``POST {squid_url}/api/v1/auth/verify-signature`` ``{squidId, signature, timestamp, payload}`` -> ``{valid}``

Positive token answers are cached (keyed by the token's SHA-256, never the token) for ``cache_ttl`` seconds
and never past ``expiresAt``, and one request per token is in flight at a time; a negative answer is
remembered for only ``NEGATIVE_TTL`` seconds, to absorb bursts of a bad token without making a token that
becomes valid wait. Signature answers are not cached: every signature is single-use. A transport failure, a
timeout, a 429/5xx or an answer outside the contract is ``DependencyUnavailableError``; a 4xx or
``valid: false`` is the caller's fault.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from typing import Any

import httpx

from api.security._cache import Clock, SingleFlight, TTLCache
from api.security.caller import Caller
from qerberos.errors import AuthenticationError, DependencyUnavailableError

logger = logging.getLogger(__name__)

NEGATIVE_TTL = 5.0

_INVALID = object()


class SquidClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 2.0,
        cache_ttl: float = 60.0,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._cache_ttl = cache_ttl
        self._tokens: TTLCache[str, Caller | object] = TTLCache(clock=clock)
        self._token_lookups: SingleFlight[str, Caller | object] = SingleFlight()
        self._wall_clock = wall_clock
        self._client: httpx.AsyncClient | None = None

    async def verify_token(self, token: str) -> Caller:
        key = hashlib.sha256(token.encode()).hexdigest()
        answer = self._tokens.get(key)
        if answer is None:
            answer = await self._token_lookups.run(key, lambda: self._ask_about_token(key, token))
        if not isinstance(answer, Caller):
            raise AuthenticationError("SQUID_IDENTITY_INVALID", "the bearer token is not valid")
        return answer

    async def _ask_about_token(self, key: str, token: str) -> Caller | object:
        caller, ttl = self._token_answer(await self._post("/api/v1/auth/verify", {"token": token}))
        if caller is None:
            self._tokens.set(key, _INVALID, NEGATIVE_TTL)
            return _INVALID
        self._tokens.set(key, caller, ttl)
        return caller

    async def verify_signature(self, squid_id: str, signature: str, timestamp: str, payload: str) -> bool:
        body = {"squidId": squid_id, "signature": signature, "timestamp": timestamp, "payload": payload}
        answer = await self._post("/api/v1/auth/verify-signature", body)
        if answer is None:
            return False
        valid = answer.get("valid")
        if not isinstance(valid, bool):
            raise DependencyUnavailableError("sQuid answered outside its contract (verify-signature)")
        return valid

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _token_answer(self, answer: dict[str, Any] | None) -> tuple[Caller | None, float]:
        if answer is None or answer.get("valid") is not True:
            if answer is not None and not isinstance(answer.get("valid"), bool):
                raise DependencyUnavailableError("sQuid answered outside its contract (verify)")
            return None, 0.0
        identity = answer.get("identity")
        squid_id = identity.get("squidId") if isinstance(identity, dict) else None
        if not isinstance(squid_id, str) or not squid_id:
            raise DependencyUnavailableError("sQuid answered outside its contract (verify: identity)")
        ttl = self._cache_ttl
        expires_at = _epoch_seconds(answer.get("expiresAt"))
        if expires_at is not None:
            remaining = expires_at - self._wall_clock()
            if remaining <= 0:
                return None, 0.0
            ttl = min(ttl, remaining)
        assert isinstance(identity, dict)
        caller = Caller(
            squid_id=squid_id,
            sub_id=_optional_str(identity.get("subId")),
            dao_id=_optional_str(identity.get("daoId")),
            source=f"squid:{squid_id}",
        )
        return caller, ttl

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The JSON answer; ``None`` for a 4xx refusal (except 429)."""
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self._base_url, timeout=self._timeout)
        try:
            response = await self._client.post(path, json=body)
        except httpx.HTTPError as exc:
            logger.warning("sQuid unreachable at %s%s: %s", self._base_url, path, exc.__class__.__name__)
            raise DependencyUnavailableError("sQuid is unavailable") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise DependencyUnavailableError(f"sQuid answered {response.status_code}")
        if 400 <= response.status_code < 500:
            return None
        try:
            answer = response.json()
        except ValueError as exc:
            raise DependencyUnavailableError("sQuid answered outside its contract (not JSON)") from exc
        if not isinstance(answer, dict):
            raise DependencyUnavailableError("sQuid answered outside its contract (not an object)")
        return answer


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _epoch_seconds(value: Any) -> float | None:
    """``expiresAt`` as epoch seconds: ISO 8601 or epoch milliseconds; ``None`` when absent or unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) / 1000.0
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.timestamp()
    return None
