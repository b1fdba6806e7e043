"""The small stateful pieces: TTL cache, replay memory, rate-limit window, permission mapping."""

from __future__ import annotations

import anyio

from api.security._cache import TTLCache
from api.security.counters import MemoryCounter
from api.security.qonsent import PERMISSION_MAP
from api.security.replay import MemoryReplayGuard
from models.identities import PERMISSIONS


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ttl_cache_forgets_after_ttl_and_keeps_the_entry_for_grace() -> None:
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache(clock=clock)
    cache.set("a", 1, 10)
    assert 1 == cache.get("a")
    clock.now += 11
    assert cache.get("a") is None
    entry = cache.entry("a")
    assert entry is not None and 1000.0 == entry.stored_at


def test_ttl_cache_is_bounded() -> None:
    cache: TTLCache[int, int] = TTLCache(max_size=3)
    for key in range(5):
        cache.set(key, key, 60)
    assert 3 == len(cache)
    assert cache.get(0) is None and 4 == cache.get(4)


def test_replay_memory_refuses_a_request_until_its_ttl_passes() -> None:
    clock = Clock()
    guard = MemoryReplayGuard(clock=clock)

    async def run() -> list[bool]:
        first = await guard.first_use(["payload:a", "signature:a"], 60)
        again = await guard.first_use(["payload:a", "signature:a"], 60)
        clock.now += 61
        later = await guard.first_use(["payload:a", "signature:a"], 60)
        return [first, again, later]

    assert [True, False, True] == anyio.run(run)


def test_replay_memory_refuses_a_request_when_any_of_its_keys_was_seen() -> None:
    """The same payload signed again (another signature) or the same signature bytes: both are replays."""
    guard = MemoryReplayGuard(clock=Clock())

    async def run() -> list[bool]:
        first = await guard.first_use(["payload:a", "signature:a"], 60)
        signed_again = await guard.first_use(["payload:a", "signature:b"], 60)
        same_signature = await guard.first_use(["payload:c", "signature:a"], 60)
        other = await guard.first_use(["payload:d", "signature:d"], 60)
        return [first, signed_again, same_signature, other]

    assert [True, False, False, True] == anyio.run(run)


def test_memory_counter_counts_per_key_within_a_window() -> None:
    clock = Clock()
    counter = MemoryCounter(clock=clock)

    async def run() -> list[tuple[int, float]]:
        hits = [await counter.hit("a", 60), await counter.hit("a", 60), await counter.hit("b", 60)]
        clock.now += 60
        hits.append(await counter.hit("a", 60))
        return hits

    assert [(1, 60.0), (2, 60.0), (1, 60.0), (1, 60.0)] == anyio.run(run)


def test_every_permission_maps_onto_a_qonsent_resource_and_action() -> None:
    assert set(PERMISSIONS) == set(PERMISSION_MAP)
    assert ("qerberos:audit", "write") == PERMISSION_MAP["qerberos:audit:write"]
    assert ("qerberos:audit", "read") == PERMISSION_MAP["audit:read"]
    assert ("qerberos:compliance", "generate") == PERMISSION_MAP["compliance:generate"]
    assert ("qerberos", "admin") == PERMISSION_MAP["admin"]
