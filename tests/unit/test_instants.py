"""The contract's spelling of an instant reads back as the same instant, in every year ``datetime`` holds."""

from __future__ import annotations

import datetime as dt

import pytest

from qerberos.instants import iso_epoch_ms, iso_instant, parse_instant


@pytest.mark.parametrize(
    ("moment", "spelled"),
    [
        (dt.datetime(275, 7, 10, tzinfo=dt.UTC), "0275-07-10T00:00:00.000Z"),  # strftime's %Y wrote "275"
        (dt.datetime(1, 1, 1, tzinfo=dt.UTC), "0001-01-01T00:00:00.000Z"),
        (dt.datetime(2026, 1, 5, 8, 30, 1, 999_999, tzinfo=dt.UTC), "2026-01-05T08:30:01.999Z"),
        (dt.datetime(2026, 1, 5, 10, tzinfo=dt.timezone(dt.timedelta(hours=2))), "2026-01-05T08:00:00.000Z"),
    ],
)
def test_an_instant_is_spelled_in_utc_with_milliseconds_and_a_four_digit_year(moment, spelled):
    assert spelled == iso_instant(moment)
    assert moment.replace(microsecond=moment.microsecond // 1000 * 1000) == parse_instant(spelled)


def test_an_epoch_in_milliseconds_is_spelled_the_same_way():
    assert ("1970-01-01T00:00:00.000Z", "2026-01-05T08:00:00.123Z") == (
        iso_epoch_ms(0),
        iso_epoch_ms(1_767_600_000_123),
    )
