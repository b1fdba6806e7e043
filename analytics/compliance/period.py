"""The report's period: a half-open interval of UTC instants, and the contract's spelling of an instant.

The sections read the period's events as ``models.reader.LedgerReader.between`` hands them out (the columns
``models.event_frame.PERIOD_COLUMNS``: one indexed range query, not a scan of the ledger).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from qerberos.errors import ValidationError
from qerberos.instants import iso_instant as iso
from qerberos.instants import parse_instant

__all__ = ["Period", "iso"]  # iso: the contract's spelling of an instant, which the sections write


@dataclasses.dataclass(frozen=True, slots=True)
class Period:
    """A half-open interval of UTC instants: ``start`` included, ``end`` excluded."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValidationError("period bounds must carry a time zone")
        if self.end <= self.start:
            raise ValidationError("the period must end after it starts", details={"start": str(self.start)})

    @classmethod
    def parse(cls, start: str | dt.datetime, end: str | dt.datetime) -> Period:
        return cls(parse_instant(start), parse_instant(end))

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp() * 1000)

    def to_json(self) -> dict[str, str]:
        return {"startDate": iso(self.start), "endDate": iso(self.end)}
