"""The signed-header scheme: timestamp rules and the canonical payload a caller signs.

Headers: ``x-squid-id``, ``x-subid`` (optional), ``x-dao-id`` (optional), ``x-ts``, ``x-sig``.

``x-ts`` is epoch milliseconds (digits only) or ISO 8601 with a zone offset (``2026-11-02T10:00:00Z``); it
must be within ±5 minutes of the server's clock. The signature covers these UTF-8 bytes, lines joined
by ``\\n`` with no trailing newline::

    qerberos-request-v1
    <METHOD upper case>
    <path as sent, plus "?" and the raw query string when there is one>
    <x-ts exactly as sent>
    <x-squid-id>
    <x-subid or empty>
    <x-dao-id or empty>
    <lower-case hex SHA-256 of the raw request body (of b"" when there is none)>

The identity headers are signed so that they cannot be swapped in transit. In remote mode sQuid verifies
``x-sig`` over this payload; in local mode it is a base64 (standard or URL-safe, padding optional) Ed25519
signature checked against the identity's public key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

from qerberos.errors import AuthenticationError

SIGNATURE_WINDOW_SECONDS = 300
"""How far ``x-ts`` may be from the server's clock, either way."""

REPLAY_TTL_SECONDS = 2 * SIGNATURE_WINDOW_SECONDS + 60
"""How long a used signature is remembered: longer than any timestamp stays acceptable."""

PAYLOAD_TAG = "qerberos-request-v1"


@dataclasses.dataclass(frozen=True, slots=True)
class SignedHeaders:
    squid_id: str
    sub_id: str | None
    dao_id: str | None
    timestamp: str
    signature: str


def parse_timestamp(raw: str) -> float:
    """Epoch seconds of ``x-ts``; raises ``TIMESTAMP_INVALID`` for anything else."""
    text = raw.strip()
    try:
        if text.isdigit():
            return int(text) / 1000.0
        parsed = dt.datetime.fromisoformat(text)
    except (ValueError, OverflowError) as exc:
        raise AuthenticationError("TIMESTAMP_INVALID", "x-ts is neither epoch milliseconds nor ISO 8601") from exc
    if parsed.tzinfo is None:
        raise AuthenticationError("TIMESTAMP_INVALID", "x-ts in ISO 8601 needs a zone offset (e.g. Z)")
    return parsed.timestamp()


def check_fresh(raw: str, now: float) -> None:
    """Refuse a timestamp outside the ±5 minute window."""
    seconds = parse_timestamp(raw)
    if abs(now - seconds) > SIGNATURE_WINDOW_SECONDS:
        raise AuthenticationError(
            "TIMESTAMP_INVALID",
            "x-ts is more than 5 minutes away from the server's clock",
            details={"maxSkewSeconds": SIGNATURE_WINDOW_SECONDS},
        )


def request_target(path: str, query_string: bytes | str) -> str:
    query = query_string.decode("latin-1") if isinstance(query_string, bytes) else query_string
    return f"{path}?{query}" if query else path


def canonical_payload(method: str, target: str, headers: SignedHeaders, body: bytes) -> str:
    """The exact text a caller signs (see the module docstring)."""
    return "\n".join(
        (
            PAYLOAD_TAG,
            method.upper(),
            target,
            headers.timestamp,
            headers.squid_id,
            headers.sub_id or "",
            headers.dao_id or "",
            hashlib.sha256(body).hexdigest(),
        )
    )
