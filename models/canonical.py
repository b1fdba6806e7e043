"""RFC 8785 canonical bytes of a ledger record and of the details it commits to.

A record's keys are ASCII and known and its only number is ``seq`` (an integer below 2^53), so RFC 8785
reduces to sorted keys plus JSON string escaping, which msgspec performs exactly as RFC 8785 asks (short
escapes, lower-case ``\\u00xx`` for other control characters, everything else as UTF-8). A record is a
``CanonicalRecord``, whose fields are declared in that sorted order: msgspec encodes it as it stands, without
a dict or a sort per record. ``tests/unit/test_canonical.py`` checks both encoders against the reference
``rfc8785`` package. Details are free-form JSON, so they take the fast path only when they hold nothing on
which the two could differ (floats, integers beyond 2^53, non-BMP keys).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import time
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import rfc8785

from qerberos.errors import ValidationError

_encode = msgspec.json.Encoder().encode
_encode_sorted = msgspec.json.Encoder(order="sorted").encode
_MAX_SAFE_INTEGER = 2**53 - 1
DETAILS_COMMITMENT_PREFIX = "sha256:"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def iso_millis(epoch_ms: int) -> str:
    """``2024-02-08T15:30:00.000Z`` for an epoch in milliseconds (UTC, millisecond precision)."""
    seconds, millis = divmod(epoch_ms, 1000)
    return f"{_iso_second(seconds)}.{millis:03d}Z"


@functools.lru_cache(maxsize=4096)
def _iso_second(epoch_seconds: int) -> str:
    # C's gmtime and strftime: a third of the CPU of a datetime's (events a second apart miss the cache)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_seconds))


def to_epoch_ms(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        raise ValidationError("timestamp needs a time zone", details={"timestamp": "no time zone"})
    delta = moment - _EPOCH
    # floor(delta / 1 ms) without the slower timedelta division: the seconds part is a whole number of ms
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_epoch_ms(epoch_ms: int) -> dt.datetime:
    seconds, millis = divmod(epoch_ms, 1000)
    return _EPOCH + dt.timedelta(0, seconds, millis * 1000)  # by position: its keywords cost a third more


class CanonicalActor(msgspec.Struct, frozen=True, rename="camel"):
    """A record's ``actor`` as it is hashed: its fields in the order RFC 8785 sorts their JSON names."""

    dao_id: str | None
    squid_id: str
    sub_id: str | None


class CanonicalRecord(msgspec.Struct, frozen=True, rename="camel"):
    """A record as it is hashed: its fields in the order RFC 8785 sorts their JSON names, its times as
    ``iso_millis`` prints them."""

    actor: CanonicalActor
    cid: str | None
    details_commitment: str
    id: str
    layer: str
    occurred_at: str
    received_at: str
    ref: str
    seq: int
    source: str
    type: str
    verdict: str


def canonical_record(
    *,
    seq: int,
    event_id: str,
    type: str,
    ref: str,
    squid_id: str,
    sub_id: str | None,
    dao_id: str | None,
    layer: str,
    verdict: str,
    details_commitment: str,
    cid: str | None,
    occurred_at_ms: int,
    received_at_ms: int,
    source: str,
) -> bytes:
    """The RFC 8785 encoding of a record as stored (keys in sorted order, no white space), its times given in
    epoch milliseconds."""
    record = CanonicalRecord(
        actor=CanonicalActor(dao_id=dao_id, squid_id=squid_id, sub_id=sub_id),
        cid=cid,
        details_commitment=details_commitment,
        id=event_id,
        layer=layer,
        occurred_at=iso_millis(occurred_at_ms),
        received_at=iso_millis(received_at_ms),
        ref=ref,
        seq=seq,
        source=source,
        type=type,
        verdict=verdict,
    )
    try:
        return _encode(record)
    except UnicodeEncodeError as exc:
        raise ValidationError("text is not valid Unicode", details={"$": "lone surrogate"}) from exc


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of any JSON value."""
    try:
        return _encode_sorted(value) if _is_plain(value) else rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeError, ValueError) as exc:  # a lone surrogate, say
        raise ValidationError("details cannot be canonicalised", details={"details": str(exc)}) from exc


def details_commitment(details: Mapping[str, Any] | None, salt: bytes) -> str:
    """``sha256:<hex>`` of the salt followed by the canonical details: hides them, binds them."""
    return commit_canonical_details(canonical_json(details), salt)


def commit_canonical_details(canonical_details: bytes, salt: bytes) -> str:
    return DETAILS_COMMITMENT_PREFIX + hashlib.sha256(salt + canonical_details).hexdigest()


def _is_plain(value: Any) -> bool:
    """True when msgspec's sorted encoding is already RFC 8785 for this value."""
    if isinstance(value, Mapping):
        return _all_plain_keys(value) and _all_plain(value.values())
    if isinstance(value, list):
        return _all_plain(value)
    if value is None or isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        return -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER
    return False


def _all_plain_keys(keys: Iterable[Any]) -> bool:
    # keys below U+D800 sort the same by code point (msgspec) and by UTF-16 unit (RFC 8785);
    # isascii() settles the common case without scanning the key in Python
    for key in keys:  # noqa: SIM110 (all() over a generator costs more than the check of a few keys)
        if not isinstance(key, str) or not (key.isascii() or max(key) < "\ud800"):
            return False
    return True


def _all_plain(values: Iterable[Any]) -> bool:
    # text, null, booleans and small integers (most detail values) are settled here, without a call each
    for value in values:
        kind = type(value)
        if kind is str or value is None or kind is bool or (kind is int and abs(value) <= _MAX_SAFE_INTEGER):
            continue
        if not _is_plain(value):
            return False
    return True
