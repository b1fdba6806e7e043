from __future__ import annotations

import hashlib

import pytest

from api.security.signed_request import SignedHeaders, canonical_payload, check_fresh, parse_timestamp
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
