"""Ids the ledger gives events that came without one: RFC 9562 version 7, ordered by time."""

from __future__ import annotations

import os
import time

from hypothesis import given
from hypothesis import strategies as st

from models.ledger import time_ordered_id


@given(st.binary(min_size=10, max_size=10))
def test_an_id_is_version_7_with_the_rfc_variant_and_the_time_in_milliseconds(randomness: bytes) -> None:
    before = time.time_ns() // 1_000_000
    made = time_ordered_id(randomness)
    after = time.time_ns() // 1_000_000
    assert (7, "specified in RFC 4122", True) == (made.version, made.variant, before <= made.int >> 80 <= after)


def test_ids_made_in_later_milliseconds_sort_later() -> None:
    ids = []
    for _ in range(5):
        ids.append(time_ordered_id(os.urandom(10)))
        time.sleep(0.002)
    assert sorted(ids) == ids == sorted(ids, key=str)
