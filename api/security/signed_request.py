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
``x-sig`` over this payload; in local mode it is an Ed25519 signature checked against the identity's public
key. Either way ``x-sig`` is base64 spelled canonically: the standard alphabet with its ``=`` padding
(RFC 4648 section 4) or the URL-safe alphabet without padding (section 5, as JWS writes it), and the unused
bits of the last character zero. Any other spelling of the same bytes is refused: the server remembers what
was signed, and a lenient decoder let one signed request through once per spelling.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib

from qerberos.errors import AuthenticationError

SIGNATURE_WINDOW_SECONDS = 300
"""How far ``x-ts`` may be from the server's clock, either way."""

REPLAY_TTL_SECONDS = 2 * SIGNATURE_WINDOW_SECONDS + 60
"""How long a used signature is remembered: longer than any timestamp stays acceptable."""

PAYLOAD_TAG = "qerberos-request-v1"

_URL_SAFE_TO_STANDARD = str.maketrans("-_", "+/")


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


def decode_base64(text: str) -> bytes:
    """The bytes of canonical base64 (see the module docstring); ``ValueError`` for any other text.

    Decoding then encoding again must give the text back, so each byte string has exactly one spelling per
    alphabet: no dropped or extra padding, no mixed alphabets, no set bits in the last character's unused part.
    """
    try:
        raw = base64.b64decode(text.translate(_URL_SAFE_TO_STANDARD) + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("not base64") from exc
    if text not in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("=")):
        raise ValueError("not canonical base64")
    return raw


def decode_signature(text: str) -> bytes:
    """The bytes of ``x-sig``; ``SIGNATURE_INVALID`` unless it is canonical base64."""
    try:
        return decode_base64(text)
    except ValueError as exc:
        raise AuthenticationError(
            "SIGNATURE_INVALID", "x-sig must be canonical base64 (standard with padding, or URL-safe without)"
        ) from exc


def replay_keys(payload: str, signature: bytes) -> tuple[str, str]:
    """What a used signed request is remembered by: the digest of the signed payload (which names the
    identity, the request and its x-ts), and the digest of the signature's bytes. Neither depends on how
    x-sig was spelled, and signing the same payload again gives the same first key."""
    return (
        "payload:" + hashlib.sha256(payload.encode()).hexdigest(),
        "signature:" + hashlib.sha256(signature).hexdigest(),
    )
