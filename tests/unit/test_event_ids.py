"""Ids the ledger gives events that came without one: RFC 9562 version 7, ordered by time."""

from __future__ import annotations

import os
import uuid

from hypothesis import given
from hypothesis import strategies as st

from models.ledger import _uuid_texts, time_ordered_id


@given(st.integers(0, 2**48 - 1), st.binary(min_size=10, max_size=10))
def test_an_id_is_version_7_with_the_rfc_variant_and_its_time_in_milliseconds(now_ms: int, randomness: bytes) -> None:
    made = time_ordered_id(now_ms, randomness)
    assert (7, "specified in RFC 4122", now_ms) == (made.version, made.variant, made.int >> 80)
    assert (uuid.UUID, uuid.SafeUUID.unknown) == (type(made), made.is_safe)  # as uuid.UUID(int=...) builds it


@given(st.lists(st.uuids()))
def test_the_texts_of_ids_are_their_str(ids: list[uuid.UUID]) -> None:
    assert [str(event_id) for event_id in ids] == _uuid_texts(ids)


def test_ids_of_later_milliseconds_sort_later_as_uuids_and_as_text() -> None:
    ids = [time_ordered_id(now_ms, os.urandom(10)) for now_ms in range(1_795_000_000_000, 1_795_000_000_005)]
    assert sorted(ids) == ids == sorted(ids, key=str)
