"""Decoding the upstream event shape: valid input passes, every failing field is named."""

from __future__ import annotations

import pytest

from models.wire_events import MAX_DETAILS_BYTES, MAX_DETAILS_DEPTH, decode_event
from qerberos.errors import PayloadTooLargeError, ValidationError

VALID = (
    b'{"type":"access","ref":"file:QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",'
    b'"actor":{"squidId":"did:squid:user123","subId":"work"},"layer":"qdrive","verdict":"ALLOW",'
    b'"details":{"operation":"download"},"cid":"QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"}'
)


def test_upstream_example_decodes() -> None:
    event = decode_event(VALID)
    assert ("access", "did:squid:user123", "work") == (event.type, event.actor.squid_id, event.actor.sub_id)


def test_every_failing_field_is_named() -> None:
    raw = b'{"type":1,"ref":"","actor":{"squidId":"x","extra":1},"layer":"q","verdict":"MAYBE","bogus":true}'
    with pytest.raises(ValidationError) as caught:
        decode_event(raw)
    assert {"type", "ref", "actor.extra", "verdict", "bogus"} == set(caught.value.details)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (
            b'{"type":"a","ref":"r","actor":{"squidId":"x"},"layer":"q","verdict":"ALLOW","timestamp":"2024-01-01T00:00:00"}',
            "timestamp",
        ),
        (b'{"type":"a","ref":"r","actor":{"squidId":"x"},"layer":"q","verdict":"ALLOW","id":"not-a-uuid"}', "id"),
        (b'{"type":"a","ref":"r","actor":{"squidId":"x"},"layer":"q","verdict":"ALLOW","cid":"nope"}', "cid"),
        (b'{"type":"a","ref":"r","layer":"q","verdict":"ALLOW"}', "actor"),
        (b'{"type":"a","ref":"r","actor":{},"layer":"q","verdict":"ALLOW"}', "actor.squidId"),
        (b'{"type":"a"', "body"),
        (b"[]", "$"),
    ],
)
def test_bad_input_names_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        decode_event(raw)
    assert field in caught.value.details


def test_details_are_bounded_in_depth_and_size() -> None:
    deep = '{"a":' * 10 + "1" + "}" * 10
    with pytest.raises(ValidationError):
        decode_event(VALID.replace(b'{"operation":"download"}', deep.encode()))
    big = '{"blob":"' + "x" * MAX_DETAILS_BYTES + '"}'
    with pytest.raises(PayloadTooLargeError):
        decode_event(VALID.replace(b'{"operation":"download"}', big.encode()))


@pytest.mark.parametrize("container", ["object", "array"])
def test_details_may_nest_exactly_to_the_limit(container: str) -> None:
    inner = "[1]" if container == "array" else '{"b":1}'
    at_limit = '{"a":' * (MAX_DETAILS_DEPTH - 2) + '{"x":"flat","y":' + inner + "}" + "}" * (MAX_DETAILS_DEPTH - 2)
    decode_event(VALID.replace(b'{"operation":"download"}', at_limit.encode()))
    one_more = '{"a":' + at_limit + "}"
    with pytest.raises(ValidationError) as caught:
        decode_event(VALID.replace(b'{"operation":"download"}', one_more.encode()))
    assert "details" in caught.value.details


@pytest.mark.parametrize(
    ("original", "spoofed", "field"),
    [
        (b'"type":"access"', b'"type":"gdpr.erasure"', "type"),
        (b'"type":"access"', b'"type":"GDPR.Erasure"', "type"),
        (b'"layer":"qdrive"', b'"layer":"qerberos"', "layer"),
    ],
)
def test_callers_cannot_write_what_only_qerberos_appends(original: bytes, spoofed: bytes, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        decode_event(VALID.replace(original, spoofed))
    assert [field] == list(caught.value.details)
