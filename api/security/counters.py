"""Fixed one-minute window counters, behind one Protocol: this process's own, Redis's (shared by every
replica), or the host's shared state (shared by the workers of one host, ``models.host_state``). The rate
limiter (``rate_limit``) counts requests per caller in them, the failure limit (``failures``) failed
authentications.

If the shared store fails, ``FallbackCounter`` counts in this process instead (and logs it) rather than
refusing all traffic: the limit degrades to per-process, the service stays up.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Protocol

from api.security._cache import Clock
from api.security._host_state import on_host_state
from models.host_state import HostState
from qerberos.errors import DependencyUnavailableError

if TYPE_CHECKING:  # redis is imported where it is configured (api.security._shared_memory)
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60


class WindowCounter(Protocol):
    async def hit(self, key: str, window: int) -> tuple[int, float]:
        """Count one request; ``(requests in the current window, seconds until it resets)``."""
        ...


class MemoryCounter:
    """One process's fixed-window counters."""

    def __init__(self, clock: Clock = time.monotonic, max_keys: int = 100_000) -> None:
        self._windows: dict[str, tuple[int, float]] = {}
        self._clock = clock
        self._max_keys = max_keys

    async def hit(self, key: str, window: int) -> tuple[int, float]:
        now = self._clock()
        count, ends = self._windows.get(key, (0, 0.0))
        if ends <= now:
            count, ends = 0, now + window
            if len(self._windows) >= self._max_keys:
                self._windows = {k: v for k, v in self._windows.items() if v[1] > now}
        self._windows[key] = (count + 1, ends)
        return count + 1, ends - now


_HIT_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
"""


class RedisCounter:
    """Fixed-window counters in Redis, shared by every replica using the same ``prefix``."""

    def __init__(self, redis: Redis, prefix: str = "qerberos") -> None:
        self._prefix = f"{prefix}:ratelimit:"
        self._script = redis.register_script(_HIT_SCRIPT)

    async def hit(self, key: str, window: int) -> tuple[int, float]:
        from redis.exceptions import RedisError  # loaded with the client that built this counter

        try:
            count, ttl_ms = await self._script(keys=[self._prefix + key], args=[window * 1000])
        except (RedisError, OSError) as exc:
            raise DependencyUnavailableError(f"redis is unavailable ({exc.__class__.__name__})") from exc
        return int(count), int(ttl_ms) / 1000.0


class HostCounter:
    """Fixed-window counters in the workers' shared state of this host (``models.host_state``)."""

    def __init__(self, state: HostState) -> None:
        self._state = state

    async def hit(self, key: str, window: int) -> tuple[int, float]:
        return await on_host_state(self._state.hit, key, window)


class FallbackCounter:
    """A shared counter (Redis, the host's shared state) that counts in this process while it fails."""

    def __init__(self, shared: WindowCounter, name: str, fallback: WindowCounter | None = None) -> None:
        self._shared = shared
        self._name = name
        self._fallback = fallback or MemoryCounter()
        self._degraded = False

    async def hit(self, key: str, window: int) -> tuple[int, float]:
        try:
            answer = await self._shared.hit(key, window)
        except DependencyUnavailableError as exc:
            if not self._degraded:
                logger.warning("%s unavailable for counting (%s): counting per process", self._name, exc.message)
                self._degraded = True
            return await self._fallback.hit(key, window)
        if self._degraded:
            logger.info("%s is back for counting", self._name)
            self._degraded = False
        return answer
