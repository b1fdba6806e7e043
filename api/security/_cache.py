"""A small bounded TTL cache for verification answers and permission decisions, and one lookup in flight per
key (one event loop, no locks)."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Clock = Callable[[], float]


@dataclasses.dataclass(frozen=True, slots=True)
class Entry(Generic[V]):
    value: V
    stored_at: float
    expires_at: float


class TTLCache(Generic[K, V]):
    """Entries expire after their own TTL; the oldest entry is evicted beyond ``max_size``."""

    def __init__(self, max_size: int = 10_000, clock: Clock = time.monotonic) -> None:
        self._entries: collections.OrderedDict[K, Entry[V]] = collections.OrderedDict()
        self._max_size = max_size
        self.clock = clock

    def get(self, key: K) -> V | None:
        """The value while it is fresh, else ``None``."""
        entry = self._entries.get(key)
        if entry is None or entry.expires_at <= self.clock():
            return None
        return entry.value

    def entry(self, key: K) -> Entry[V] | None:
        """The entry even when expired (for grace periods); the caller judges its age."""
        return self._entries.get(key)

    def set(self, key: K, value: V, ttl: float) -> None:
        if ttl <= 0:
            self._entries.pop(key, None)
            return
        now = self.clock()
        self._entries[key] = Entry(value, now, now + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_size:
            self._entries.popitem(last=False)

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


class SingleFlight(Generic[K, V]):
    """One lookup in flight per key: a request that needs a key's answer while its lookup runs awaits that
    lookup (its answer or its error) instead of starting another. A busy caller's cached answer expires under
    dozens of waiting requests; each starting its own lookup cost CPU, connections and tail latency."""

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[V]] = {}

    async def run(self, key: K, lookup: Callable[[], Awaitable[V]]) -> V:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(self._finish(key, lookup()))
            self._running[key] = task
        return await asyncio.shield(task)  # a request that goes away leaves the lookup to the others

    async def _finish(self, key: K, lookup: Awaitable[V]) -> V:
        try:
            return await lookup
        finally:
            del self._running[key]
