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

The counters themselves are in ``counters`` (this process's, Redis's).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from litestar import Request
from litestar.datastructures import MutableScopeHeaders
from litestar.middleware.rate_limit import RateLimitConfig, RateLimitMiddleware
from litestar.types import Message, Receive, Scope, Send

from api.security.authentication import PUBLIC_OPT_KEY
from api.security.caller import Caller
from api.security.counters import WINDOW_SECONDS, MemoryCounter, WindowCounter
from qerberos.errors import RateLimitedError


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
