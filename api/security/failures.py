"""Failed authentication is limited, before any work: per client address and per claimed identity.

Each failure (an ``AuthenticationError``) counts one in the current minute of its client address (an IPv6
address by its /64, the block one host holds) and, for signed headers, of the claimed ``x-squid-id``, in the
same counters as the rate limit (Redis, the workers' shared store, or this process's). Once a key holds
``per_minute`` failures, every request from that address or for that identity is answered 429 with
``Retry-After`` until the minute ends, before its credentials are looked at: no token lookup, no sQuid call,
no body read. A valid caller behind a blocked address waits for the minute like anyone there.

A worker learns that a key is blocked from the count its own failures return, so that a blocked flood costs
no I/O at all; each other worker (or replica) lets at most one more failure through before it knows: at
most ``per_minute + workers - 1`` failures a minute reach the verifiers.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Sequence
from typing import Any

from litestar import Request

from api.security._cache import Clock, TTLCache
from api.security.counters import WINDOW_SECONDS, WindowCounter
from qerberos.errors import RateLimitedError

_IPV6_BLOCK = 64


class FailureLimit:
    """``per_minute`` failed authentications per key; 0 turns the limit off."""

    def __init__(self, counter: WindowCounter, per_minute: int, *, clock: Clock = time.monotonic) -> None:
        self._counter = counter
        self._per_minute = per_minute
        self._clock = clock
        self._blocked: TTLCache[str, float] = TTLCache(max_size=100_000, clock=clock)  # key -> end of its block

    def check(self, keys: Sequence[str]) -> None:
        """Refuse (``RateLimitedError``) when any key is blocked."""
        for key in keys:
            until = self._blocked.get(key)
            if until is not None:
                retry_after = max(1, math.ceil(until - self._clock()))
                raise RateLimitedError(
                    f"more than {self._per_minute} failed authentications a minute", retry_after=retry_after
                )

    async def failed(self, keys: Sequence[str]) -> None:
        """Count one failure against each key; block the keys that reached the limit for the rest of the minute."""
        if self._per_minute <= 0:
            return
        for key in keys:
            count, reset_in = await self._counter.hit("authfail:" + key, WINDOW_SECONDS)
            if count >= self._per_minute:
                self._blocked.set(key, self._clock() + reset_in, reset_in)


def failure_keys(request: Request[Any, Any, Any]) -> list[str]:
    """The request's client address, and the identity its signed headers claim (when it sends no bearer token)."""
    keys = ["address:" + address_block(request.client.host if request.client else "unknown")]
    squid_id = (request.headers.get("x-squid-id") or "").strip()
    if squid_id and "authorization" not in request.headers:
        keys.append("identity:" + squid_id)
    return keys


def address_block(host: str) -> str:
    """An IPv4 address as it is; an IPv6 address as its /64 network (one host can rotate through it)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{_IPV6_BLOCK}", strict=False))
    return str(address)
