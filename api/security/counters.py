"""Fixed one-minute window counters, behind one Protocol: this process's own, or Redis's (shared by every
replica). The rate limiter (``rate_limit``) counts requests per caller in them.

If Redis fails, ``RedisCounter`` falls back to this process's own counter (and logs it) rather than
refusing all traffic: the limit degrades to per-replica, the service stays up.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.security._cache import Clock

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

    def __init__(self, redis: Redis, prefix: str = "qerberos", fallback: WindowCounter | None = None) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:ratelimit:"
        self._script = redis.register_script(_HIT_SCRIPT)
        self._fallback = fallback or MemoryCounter()
        self._degraded = False

    async def hit(self, key: str, window: int) -> tuple[int, float]:
        try:
            count, ttl_ms = await self._script(keys=[self._prefix + key], args=[window * 1000])
        except (RedisError, OSError) as exc:
            if not self._degraded:
                logger.warning("redis unavailable for rate limiting (%s): limiting per process", exc.__class__.__name__)
                self._degraded = True
            return await self._fallback.hit(key, window)
        if self._degraded:
            logger.info("redis is back for rate limiting")
            self._degraded = False
        return int(count), int(ttl_ms) / 1000.0
