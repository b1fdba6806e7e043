"""Local mode: callers are the ``identities`` of qerberos's own database (``models/identities.py``).

Bearer tokens are looked up by their SHA-256; signed headers are verified here with the identity's Ed25519
public key (see ``signed_request``). Lookups run in a worker thread and are cached for ``LOOKUP_TTL``
seconds, so disabling an identity takes effect within that time. For bearer tokens the cache holds the
answer itself (caller and credential), so a request with a known token costs one hash and one dict lookup;
when that answer expires, the requests that find it expired all wait for one lookup of the token.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio.to_thread
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from api.security._cache import Clock, SingleFlight, TTLCache
from api.security.caller import Caller, Credential
from api.security.signed_request import decode_base64
from models.identities import Identity, find_by_squid_id, find_by_token_hash, hash_token
from qerberos.errors import AuthenticationError

if TYPE_CHECKING:  # a handle passed through to models.identities: api runs no SQL
    from sqlalchemy import Engine

LOOKUP_TTL = 5.0

_MISSING = object()


class LocalIdentities:
    """Verifies credentials against the local identities."""

    def __init__(self, engine: Engine, *, clock: Clock = time.monotonic) -> None:
        self._engine = engine
        self._by_token: TTLCache[str, tuple[Caller, Credential] | object] = TTLCache(clock=clock)
        self._by_squid_id: TTLCache[str, Identity | object] = TTLCache(clock=clock)
        self._token_lookups: SingleFlight[str, tuple[Caller, Credential] | object] = SingleFlight()

    async def verify_token(self, token: str) -> tuple[Caller, Credential]:
        token_hash = hash_token(token)
        answer = self._by_token.get(token_hash)
        if answer is None:
            answer = await self._token_lookups.run(token_hash, lambda: self._look_up_token(token_hash))
        if not isinstance(answer, tuple):
            raise AuthenticationError("SQUID_IDENTITY_INVALID", "the bearer token is not valid")
        return answer

    async def _look_up_token(self, token_hash: str) -> tuple[Caller, Credential] | object:
        identity = await anyio.to_thread.run_sync(find_by_token_hash, self._engine, token_hash)
        answer = _bearer_answer(identity)
        self._by_token.set(token_hash, answer, LOOKUP_TTL)
        return answer

    async def signer(self, squid_id: str) -> tuple[Identity, str]:
        """The identity and its public key; refuses an unknown or disabled identity, or one without a key.

        Asked before a signed request's body is read: a request that no key could verify costs no hashing.
        """
        identity = self._by_squid_id.get(squid_id)
        if identity is None:
            found = await anyio.to_thread.run_sync(find_by_squid_id, self._engine, squid_id)
            identity = found if found is not None else _MISSING
            self._by_squid_id.set(squid_id, identity, LOOKUP_TTL)
        if not isinstance(identity, Identity) or identity.disabled:
            raise AuthenticationError("SQUID_IDENTITY_INVALID", "unknown or disabled x-squid-id")
        if identity.public_key is None:
            raise AuthenticationError("SIGNATURE_INVALID", "this identity has no public key for signed requests")
        return identity, identity.public_key

    async def verify_signature(self, squid_id: str, signature: str, payload: str) -> tuple[Caller, Credential]:
        identity, public_key = await self.signer(squid_id)
        if not verify_ed25519(public_key, signature, payload.encode()):
            raise AuthenticationError("SIGNATURE_INVALID", "the signature does not verify")
        return _caller(identity), Credential("signature", identity.permission_set)


def verify_ed25519(public_key_b64: str, signature: str, message: bytes) -> bool:
    """Fails closed: anything malformed, including base64 that is not spelled canonically, is ``False``."""
    try:
        key = Ed25519PublicKey.from_public_bytes(decode_base64(public_key_b64))
        key.verify(decode_base64(signature), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _bearer_answer(identity: Identity | None) -> tuple[Caller, Credential] | object:
    """What a bearer token of this identity proves; ``_MISSING`` for an unknown or disabled identity."""
    if identity is None or identity.disabled:
        return _MISSING
    return _caller(identity), Credential("bearer", identity.permission_set)


def _caller(identity: Identity) -> Caller:
    return Caller(squid_id=identity.squid_id, sub_id=None, dao_id=None, source=f"local:{identity.name}")
