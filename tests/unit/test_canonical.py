"""The fast canonical encoders agree with the reference RFC 8785 implementation."""

from __future__ import annotations

import json

import msgspec
import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from models.canonical import (
    CanonicalActor,
    CanonicalRecord,
    canonical_json,
    canonical_record,
    details_commitment,
    from_epoch_ms,
    iso_millis,
    to_epoch_ms,
)
from qerberos.errors import ValidationError

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats(allow_nan=False, allow_infinity=False) | _text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=12,
)


@given(_json)
def test_canonical_json_equals_reference_rfc8785(value: object) -> None:
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises(ValidationError):
            canonical_json(value)
    else:
        assert expected == canonical_json(value)


@given(
    seq=st.integers(0, 2**53 - 1),
    text=_text.filter(bool),
    optional=st.none() | _text,
    millis=st.integers(0, 253402300799999),
)
def test_record_template_equals_reference_rfc8785(seq: int, text: str, optional: str | None, millis: int) -> None:
    encoded = canonical_record(
        seq=seq,
        event_id=text,
        type=text,
        ref=text,
        squid_id=text,
        sub_id=optional,
        dao_id=optional,
        layer=text,
        verdict="DENY",
        details_commitment=text,
        cid=optional,
        occurred_at_ms=millis,
        received_at_ms=millis,
        source=text,
    )
    assert rfc8785.dumps(json.loads(encoded)) == encoded


@pytest.mark.parametrize("struct", [CanonicalRecord, CanonicalActor])
def test_record_fields_are_declared_in_the_order_rfc8785_sorts_their_names(struct: type[msgspec.Struct]) -> None:
    names = [field.encode_name for field in msgspec.structs.fields(struct)]
    assert sorted(names) == names


@given(st.integers(0, 253402300799999))
def test_iso_millis_round_trips(millis: int) -> None:
    moment = from_epoch_ms(millis)
    assert millis == to_epoch_ms(moment)
    assert moment.isoformat(timespec="milliseconds").replace("+00:00", "Z") == iso_millis(millis)


def test_details_commitment_depends_on_salt_and_content() -> None:
    salt = bytes(16)
    base = details_commitment({"ip": "10.0.0.1"}, salt)
    assert base.startswith("sha256:")
    assert base != details_commitment({"ip": "10.0.0.2"}, salt)
    assert base != details_commitment({"ip": "10.0.0.1"}, bytes([1]) * 16)
    assert base == details_commitment({"ip": "10.0.0.1"}, salt)


@pytest.mark.parametrize(
    ("details", "plain"),
    [
        ({"ip": "10.0.0.1", "size": 2**53 - 1, "ok": True, "none": None}, True),
        ({"nested": [{"é": ["x", -(2**53) + 1]}], "empty": {}}, True),
        ({"ratio": 0.5}, False),
        ({"list": [1, 2.0]}, False),
        ({"\U0001f600": 1}, False),
    ],
    ids=repr,
)
def test_only_details_msgspec_encodes_as_rfc8785_skip_the_reference_encoder(
    monkeypatch: pytest.MonkeyPatch, details: dict[str, object], plain: bool
) -> None:
    expected = rfc8785.dumps(details)
    calls: list[object] = []
    monkeypatch.setattr(rfc8785, "dumps", lambda value: calls.append(value) or expected)
    assert expected == canonical_json(details)
    assert (not plain) == bool(calls)


@pytest.mark.parametrize("details", [{"note": "\ud800"}, {"\udc00": 1}, {"list": [1.5, "\ud800"]}])
def test_details_holding_a_lone_surrogate_are_refused_as_invalid(details: dict[str, object]) -> None:
    """Text that is not Unicode has no canonical bytes, on the fast path and the reference one alike."""
    with pytest.raises(ValidationError, match="details cannot be canonicalised"):
        canonical_json(details)
