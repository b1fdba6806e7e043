"""Refuse a signed request seen before: Redis ``SET NX EX`` when Redis is configured (shared by every replica),
else the host's shared state with several workers (``models.host_state``), else an in-memory TTL set (one
process). The shared ones fail closed: unreachable, they answer ``DependencyUnavailableError``.

A request is remembered by ``signed_request.replay_keys``: digests of what was signed and of the signature's
bytes, never the signature's text (several texts can spell the same bytes) and never the signature itself.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from api.security._cache import Clock
from api.security._host_state import on_host_state
from models.host_state import HostState
from qerberos.errors import DependencyUnavailableError

if TYPE_CHECKING:  # redis is imported where it is configured (api.security._shared_memory)
    from redis.asyncio import Redis


class ReplayGuard(Protocol):
    async def first_use(self, keys: Sequence[str], ttl: int) -> bool:
        """Record every key for ``ttl`` seconds; ``True`` when none of them was seen within its own ttl."""
        ...


class MemoryReplayGuard:
    """One process's memory of used requests (enough for a single worker)."""

    def __init__(self, max_size: int = 1_000_000, clock: Clock = time.monotonic) -> None:
        self._seen: dict[str, float] = {}
        self._max_size = max_size
        self._clock = clock

    async def first_use(self, keys: Sequence[str], ttl: int) -> bool:
        now = self._clock()
        fresh = all(self._seen.get(key, now) <= now for key in keys)
        if len(self._seen) + len(keys) > self._max_size:
            self._purge(now)
        for key in keys:
            self._seen[key] = now + ttl
        return fresh

    def _purge(self, now: float) -> None:
        self._seen = {key: expires for key, expires in self._seen.items() if expires > now}
        if len(self._seen) >= self._max_size:
            # Still full of live entries: refuse to grow without bound; forget the oldest half.
            keep = sorted(self._seen.items(), key=lambda item: item[1])[len(self._seen) // 2 :]
            self._seen = dict(keep)


class RedisReplayGuard:
    """Shared across replicas. Redis unreachable -> ``DependencyUnavailableError`` (fails closed)."""

    def __init__(self, redis: Redis, prefix: str = "qerberos") -> None:
        self._redis = redis
        self._prefix = f"{prefix}:replay:"

    async def first_use(self, keys: Sequence[str], ttl: int) -> bool:
        from redis.exceptions import RedisError  # loaded with the client this guard was given

        try:
            async with self._redis.pipeline(transaction=True) as pipeline:
                for key in keys:
                    pipeline.set(self._prefix + key, b"1", nx=True, ex=ttl)
                stored = await pipeline.execute()
        except (RedisError, OSError) as exc:
            raise DependencyUnavailableError("redis is unavailable for replay protection") from exc
        return all(stored)


class HostReplayGuard:
    """Shared by the workers of this host (``models.host_state``); fails closed like Redis."""

    def __init__(self, state: HostState) -> None:
        self._state = state

    async def first_use(self, keys: Sequence[str], ttl: int) -> bool:
        return await on_host_state(self._state.first_use, keys, ttl)
