"""Refuse a signature seen before: Redis ``SET NX EX`` when Redis is configured (shared by every replica),
else an in-memory TTL set (one process). Only the SHA-256 of a signature is stored, never the signature.
"""

from __future__ import annotations

import hashlib
import time
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.security._cache import Clock
from qerberos.errors import DependencyUnavailableError


class ReplayGuard(Protocol):
    async def first_use(self, signature: str, ttl: int) -> bool:
        """Record ``signature``; ``True`` the first time it is seen within ``ttl`` seconds."""
        ...


def _fingerprint(signature: str) -> str:
    return hashlib.sha256(signature.encode()).hexdigest()


class MemoryReplayGuard:
    """One process's memory of used signatures (enough for a single worker)."""

    def __init__(self, max_size: int = 1_000_000, clock: Clock = time.monotonic) -> None:
        self._seen: dict[str, float] = {}
        self._max_size = max_size
        self._clock = clock

    async def first_use(self, signature: str, ttl: int) -> bool:
        now = self._clock()
        key = _fingerprint(signature)
        expires = self._seen.get(key)
        if expires is not None and expires > now:
            return False
        if len(self._seen) >= self._max_size:
            self._purge(now)
        self._seen[key] = now + ttl
        return True

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

    async def first_use(self, signature: str, ttl: int) -> bool:
        try:
            stored = await self._redis.set(self._prefix + _fingerprint(signature), b"1", nx=True, ex=ttl)
        except (RedisError, OSError) as exc:
            raise DependencyUnavailableError("redis is unavailable for replay protection") from exc
        return bool(stored)
