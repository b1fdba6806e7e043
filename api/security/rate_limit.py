"""Per-caller rate limiting, shared by every replica through Redis when ``QERBEROS_REDIS_URL`` is set.

Built on Litestar's ``RateLimitConfig`` (its ``identifier_for_request``, ``exclude_opt_key`` and header
settings) with our own ``middleware_class``, for three reasons:

- the key is the authenticated caller (``Caller.source``), not the client address, so the middleware must
  sit *after* the authentication middleware (``middleware=[authentication, rate_limit]``);
- Litestar's limiter stores the whole timestamp history of a key and does get-then-set through the store:
  with several replicas concurrent requests overwrite each other (the limit leaks), and each request
  moves O(limit) bytes. Here a fixed one-minute window is one atomic Redis ``INCR`` + ``PEXPIRE`` (Lua);
- a refusal raises ``RateLimitedError(retry_after=...)``, which the app's one error mapping answers as
  429 ``RATE_LIMIT_EXCEEDED`` with ``Retry-After``.

If Redis fails, the limiter falls back to this process's own counter (and logs it) rather than refusing
all traffic: the limit degrades to per-replica, the service stays up.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any, Protocol

from litestar import Request
from litestar.datastructures import MutableScopeHeaders
from litestar.middleware.rate_limit import RateLimitConfig, RateLimitMiddleware
from litestar.types import Message, Receive, Scope, Send
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.security._cache import Clock
from api.security.authentication import PUBLIC_OPT_KEY
from api.security.caller import Caller
from qerberos.errors import RateLimitedError

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


def caller_identifier(request: Request[Any, Any, Any]) -> str:
    """The limiter's key: the authenticated caller; the client address only if authentication did not run."""
    caller = request.scope.get("user")
    if isinstance(caller, Caller):
        return caller.source
    return "address:" + (request.client.host if request.client else "unknown")


@dataclasses.dataclass
class CallerRateLimitConfig(RateLimitConfig):
    counter: WindowCounter = dataclasses.field(default_factory=MemoryCounter)


class CallerRateLimitMiddleware(RateLimitMiddleware):
    config: CallerRateLimitConfig

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request: Request[Any, Any, Any] = scope["litestar_app"].request_class(scope)
        count, reset_in = await self.config.counter.hit(self.config.identifier_for_request(request), WINDOW_SECONDS)
        if count > self.max_requests:
            retry_after = max(1, math.ceil(reset_in))
            raise RateLimitedError(f"more than {self.max_requests} requests per minute", retry_after=retry_after)
        if self.config.set_rate_limit_headers:
            send = self._with_headers(send, count, reset_in)
        await self.app(scope, receive, send)

    def _with_headers(self, send: Send, count: int, reset_in: float) -> Send:
        values = {
            self.config.rate_limit_policy_header_key: f"{self.max_requests}; w={WINDOW_SECONDS}",
            self.config.rate_limit_limit_header_key: str(self.max_requests),
            self.config.rate_limit_remaining_header_key: str(max(0, self.max_requests - count)),
            self.config.rate_limit_reset_header_key: str(max(0, math.ceil(reset_in))),
        }

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableScopeHeaders(message)
                for key, value in values.items():
                    headers[key] = value
            await send(message)

        return wrapped


def rate_limit_config(per_minute: int, counter: WindowCounter | None = None) -> CallerRateLimitConfig:
    return CallerRateLimitConfig(
        rate_limit=("minute", per_minute),
        identifier_for_request=caller_identifier,
        exclude_opt_key=PUBLIC_OPT_KEY,
        middleware_class=CallerRateLimitMiddleware,
        counter=counter or MemoryCounter(),
    )
