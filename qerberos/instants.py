"""Instants that callers send (query parameters, report periods), read in UTC or refused naming the parameter.

Converting to UTC can leave the calendar that ``datetime`` holds: ``0001-01-01T00:00:00+14:00`` falls in
year 0 in UTC and ``9999-12-31T23:59:59-14:00`` in year 10000, and ``astimezone`` raises ``OverflowError``
on both. Such an instant is a ``ValidationError`` (400) naming the parameter, never an exception that
answers 500.
"""

from __future__ import annotations

import datetime as dt

from qerberos.errors import ValidationError

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def iso_instant(moment: dt.datetime) -> str:
    """``2026-01-05T00:00:00.000Z``, the contract's spelling: UTC, milliseconds, and a four-digit year
    (``strftime``'s ``%Y`` wrote the year 275 as ``275``, which no ISO 8601 reader takes back: a report over
    such a period failed in its notebook, 500)."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")[:-6] + "Z"  # drops "+00:00"


def iso_epoch_ms(epoch_ms: int) -> str:
    """``iso_instant`` of an epoch in milliseconds."""
    return iso_instant(_EPOCH + dt.timedelta(milliseconds=epoch_ms))


def parse_instant(value: str | dt.datetime, name: str = "value") -> dt.datetime:
    """An ISO 8601 date or date-time in UTC; naive values are UTC; a bare date is its midnight.

    ``name`` is the parameter the value came in, as the caller spelled it (``startDate``).
    """
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValidationError("not an ISO 8601 date-time", details={name: value}) from exc
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError as exc:
        raise ValidationError(
            "date-time out of range", details={name: "in UTC it must lie between 0001-01-01 and 9999-12-31"}
        ) from exc
