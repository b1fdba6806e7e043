from __future__ import annotations

import hashlib

import pytest

from api.security.signed_request import (
    SignedHeaders,
    canonical_payload,
    check_fresh,
    decode_base64,
    parse_timestamp,
    replay_keys,
)
from qerberos.errors import AuthenticationError


def test_timestamp_accepts_epoch_milliseconds_and_iso_8601_with_zone() -> None:
    assert 1_700_000_000.5 == parse_timestamp("1700000000500")
    assert 1_700_000_000.0 == parse_timestamp("2023-11-14T22:13:20Z")
    assert 1_700_000_000.0 == parse_timestamp("2023-11-14T23:13:20+01:00")


@pytest.mark.parametrize("raw", ["", "yesterday", "2023-11-14T22:13:20", "-5", "1e12"])
def test_timestamp_refuses_anything_else_as_timestamp_invalid(raw: str) -> None:
    with pytest.raises(AuthenticationError) as caught:
        parse_timestamp(raw)
    assert "TIMESTAMP_INVALID" == caught.value.code


def test_freshness_window_is_five_minutes_either_way() -> None:
    now = 1_700_000_000.0
    check_fresh(str(int((now - 299) * 1000)), now)
    check_fresh(str(int((now + 299) * 1000)), now)
    for skew in (-301, 301):
        with pytest.raises(AuthenticationError):
            check_fresh(str(int((now + skew) * 1000)), now)


def test_canonical_payload_is_the_documented_text() -> None:
    headers = SignedHeaders("alice", None, "dao-1", "1700000000000", "sig")
    body = b'{"a":1}'
    expected = "\n".join(
        [
            "qerberos-request-v1",
            "POST",
            "/audit?x=1",
            "1700000000000",
            "alice",
            "",
            "dao-1",
            hashlib.sha256(body).hexdigest(),
        ]
    )
    assert expected == canonical_payload("post", "/audit?x=1", headers, body)


def test_base64_has_one_spelling_per_alphabet() -> None:
    raw = bytes([0xFB, 0xFF, 0xBF, 0x01])  # standard "+/+/AQ==", URL-safe "-_-_AQ"
    assert raw == decode_base64("+/+/AQ==") == decode_base64("-_-_AQ")
    for other in ("+/+/AQ", "+/+/AQ=", "-_-_AQ==", "-_+/AQ==", "+/+/AR==", "+/+/AQ==\n", " +/+/AQ=="):
        with pytest.raises(ValueError):
            decode_base64(other)


def test_replay_keys_name_what_was_signed_not_how_the_signature_was_spelled() -> None:
    signature = bytes(64)
    payload, spelled = replay_keys("qerberos-request-v1\nGET", signature)
    assert payload == "payload:" + hashlib.sha256(b"qerberos-request-v1\nGET").hexdigest()
    assert spelled == "signature:" + hashlib.sha256(signature).hexdigest()
