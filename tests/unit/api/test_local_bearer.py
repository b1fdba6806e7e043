"""Local bearer tokens: the cached answer is the caller and credential, refused tokens stay refused."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Engine

from api.security import local
from api.security.caller import Caller, Credential
from api.security.local import LOOKUP_TTL, LocalIdentities
from models.identities import Identity, create_identity, set_disabled
from qerberos.errors import AuthenticationError, LedgerError


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Token hashes looked up in the database, in order."""
    seen: list[str] = []
    find = local.find_by_token_hash

    def counted(engine: Engine, token_hash: str) -> Identity | None:
        seen.append(token_hash)
        return find(engine, token_hash)

    monkeypatch.setattr(local, "find_by_token_hash", counted)
    return seen


def test_a_known_token_answers_its_caller_and_grants_once_looked_up(engine: Engine, lookups: list[str]) -> None:
    token = create_identity(engine, "writer", ["qerberos:audit:write"], squid_id="alice")[1]
    identities = LocalIdentities(engine)

    first = asyncio.run(identities.verify_token(token))
    second = asyncio.run(identities.verify_token(token))

    expected = (Caller("alice", None, None, "local:writer"), Credential("bearer", frozenset({"qerberos:audit:write"})))
    assert (expected, expected) == (first, second)
    assert 1 == len(lookups)


def test_a_disabled_identity_is_refused_once_its_cached_answer_expires(engine: Engine, lookups: list[str]) -> None:
    token = create_identity(engine, "writer", ["audit:read"])[1]
    clock = _Clock()
    identities = LocalIdentities(engine, clock=clock)
    asyncio.run(identities.verify_token(token))

    set_disabled(engine, "writer")
    clock.now += LOOKUP_TTL + 1

    with pytest.raises(AuthenticationError):
        asyncio.run(identities.verify_token(token))
    assert 2 == len(lookups)


def test_an_unknown_token_is_refused_again_without_a_second_lookup(engine: Engine, lookups: list[str]) -> None:
    identities = LocalIdentities(engine)
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            asyncio.run(identities.verify_token("qb_unknown"))
    assert 1 == len(lookups)


def test_requests_that_find_an_answer_expired_together_share_one_lookup(engine: Engine, lookups: list[str]) -> None:
    token = create_identity(engine, "writer", ["audit:read"], squid_id="alice")[1]
    clock = _Clock()
    identities = LocalIdentities(engine, clock=clock)

    async def burst() -> list[tuple[Caller, Credential]]:
        return await asyncio.gather(*(identities.verify_token(token) for _ in range(32)))

    first = asyncio.run(burst())
    clock.now += LOOKUP_TTL + 1
    second = asyncio.run(burst())

    assert [first[0]] * 32 == first == second
    assert 2 == len(lookups)


def test_a_failed_shared_lookup_fails_its_waiters_and_the_next_request_looks_up_again(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = create_identity(engine, "writer", ["audit:read"])[1]
    identities = LocalIdentities(engine)
    find = local.find_by_token_hash

    def unavailable(_engine: Engine, _token_hash: str) -> Identity | None:
        raise LedgerError("could not read identities")

    monkeypatch.setattr(local, "find_by_token_hash", unavailable)

    async def burst() -> list[object]:
        return await asyncio.gather(*(identities.verify_token(token) for _ in range(4)), return_exceptions=True)

    failures = asyncio.run(burst())
    monkeypatch.setattr(local, "find_by_token_hash", find)

    assert [LedgerError] * 4 == [type(failure) for failure in failures]
    assert "local:writer" == asyncio.run(identities.verify_token(token))[0].source
