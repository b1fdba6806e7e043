"""Strict JSON input (``qerberos.json_input``), sequence numbers in text and instants sent by callers: every
bad input is a ``ValidationError`` naming what is wrong, never another exception."""

from __future__ import annotations

import datetime as dt

import pytest

from models.ledger import MAX_SEQ, parse_seq
from models.wire_events import decode_event
from qerberos.errors import ValidationError
from qerberos.instants import parse_instant
from qerberos.json_input import MAX_DEPTH, read_json, unstorable_text
from tests.unit.test_wire_events import VALID


def _refused(raw: bytes | str) -> dict[str, object]:
    with pytest.raises(ValidationError) as raised:
        read_json(raw)
    return raised.value.details


def test_valid_json_reads_as_the_json_module_would() -> None:
    assert {"a": [1, 2.5, None, True, "é"], "b": {}} == read_json(b'{"a": [1, 2.5, null, true, "\\u00e9"], "b": {}}')
    assert "plain" == read_json('"plain"')


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1, "a": 2}',
        b'{"a": {"b": 1, "c": 2, "b": 1}}',
        b'[{"x": 1}, {"y": 1, "y": 1}]',
        b'{"a": 1, "\\u0061": 2}',  # the same name, spelled with an escape
    ],
)
def test_a_member_name_given_twice_is_refused(raw: bytes) -> None:
    assert "appears more than once" in str(_refused(raw)["body"])


@pytest.mark.parametrize("raw", [b"NaN", b"[Infinity]", b'{"x": -Infinity}', b"[1e400]", b"-1e999"])
def test_numbers_beyond_binary64_are_refused(raw: bytes) -> None:
    assert "body" in _refused(raw)


def test_an_integer_of_more_than_4300_digits_is_refused() -> None:
    assert "body" in _refused(b"9" * 5000)


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe{}", b'{"a": "\xc3"}', '{"a": 1}'.encode("utf-16"), "[\ud800]", '["\udcff"]'],
    ids=["invalid byte", "cut sequence", "UTF-16", "surrogate in a str", "surrogateescape byte"],
)
def test_text_that_is_not_utf8_is_refused(raw: bytes | str) -> None:
    assert "body" in _refused(raw)


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 999, 1_000, 100_000])
def test_nesting_beyond_the_bound_is_refused_however_deep(levels: int) -> None:
    assert {"body": f"at most {MAX_DEPTH} levels of nesting"} == _refused(b"[" * levels + b"]" * levels)
    assert {"body": f"at most {MAX_DEPTH} levels of nesting"} == _refused(b'{"a":' * levels + b"1" + b"}" * levels)


def test_nesting_up_to_the_bound_reads() -> None:
    assert read_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None


@pytest.mark.parametrize(
    ("raw", "problems"),
    [
        (b'{"ref": "a\\u0000b"}', {"ref": "holds a NUL character"}),
        (b'{"a\\u0000": 1}', {"a\x00": "holds a NUL character"}),
        (b'[{"x": ["ok", "\\ud800"]}]', {"0.x.1": "holds a lone surrogate"}),
        (b'"\\udc00"', {"$": "holds a lone surrogate"}),
    ],
)
def test_nul_and_lone_surrogates_are_refused_where_they_are(raw: bytes, problems: dict[str, str]) -> None:
    assert problems == _refused(raw)


def test_escapes_that_are_storable_text_read() -> None:
    assert ["\\u0000", "\U0001f600", "\x01"] == read_json(b'["\\\\u0000", "\\ud83d\\ude00", "\\u0001"]')


def test_unstorable_text_finds_every_place_or_none() -> None:
    assert {} == unstorable_text({"a": ["b", 1, None], "c": "d"})
    assert {"a.1": "holds a NUL character", "c": "holds a lone surrogate"} == unstorable_text(
        {"a": ["b", "\x00"], "c": "\udfff"}
    )


def test_the_event_decoder_applies_every_rule() -> None:
    for raw in (VALID.replace(b'"layer"', b'"type":"x","layer"'), b"[" * 2000 + b"]" * 2000, b'{"x": NaN}'):
        with pytest.raises(ValidationError):
            decode_event(raw)


def test_sequence_numbers_are_ascii_digits_up_to_2_to_the_63_minus_1() -> None:
    assert [0, 42, MAX_SEQ] == [parse_seq(text) for text in ("0", "042", str(MAX_SEQ))]
    for text in ("\u0663", "\u00b3", "1\u0663", "+1", "-1", " 1", "1_000", "", str(MAX_SEQ + 1), "9" * 5000):
        assert parse_seq(text) is None, text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-05", dt.datetime(2026, 1, 5, tzinfo=dt.UTC)),
        ("2026-01-05T01:00:00+01:00", dt.datetime(2026, 1, 5, tzinfo=dt.UTC)),
        ("0001-01-01T14:00:00+14:00", dt.datetime(1, 1, 1, tzinfo=dt.UTC)),
        (dt.datetime(2026, 1, 5), dt.datetime(2026, 1, 5, tzinfo=dt.UTC)),  # naive: UTC
    ],
)
def test_instants_are_read_in_utc(value: str | dt.datetime, expected: dt.datetime) -> None:
    assert expected == parse_instant(value, "startDate")


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=14))),
        "last week",
    ],
)
def test_instants_outside_the_calendar_in_utc_are_refused_naming_the_parameter(value: str | dt.datetime) -> None:
    with pytest.raises(ValidationError) as raised:
        parse_instant(value, "endDate")
    assert ["endDate"] == list(raised.value.details)
