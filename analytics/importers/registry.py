"""The import formats by name, and ``import_events``: the events of an input in one of them."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from analytics.importers import azuread, cloudtrail, o365, ocsf, sshd
from analytics.importers.fields import ImportedEvent, ImportFailure, record_text, stable_id
from analytics.importers.json_records import json_records

__all__ = ["FORMATS", "import_events"]

_JSON_MAPPERS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    cloudtrail.FORMAT: cloudtrail.map_record,
    azuread.FORMAT: azuread.map_record,
    o365.FORMAT: o365.map_record,
    ocsf.FORMAT: ocsf.map_record,
}
#: Every format ``import_events`` reads.
FORMATS: tuple[str, ...] = (*_JSON_MAPPERS, sshd.FORMAT)


def import_events(
    format: str, lines: Iterable[bytes], *, year: int | None = None, now: dt.datetime | None = None
) -> Iterator[ImportedEvent]:
    """The events of ``lines`` (the input's lines as bytes) in ``format``; an ``ImportFailure`` names the first
    line that cannot be read or mapped. ``year`` and ``now``: for syslog times, which have no year."""
    if format == sshd.FORMAT:
        for item in sshd.import_lines(lines, year=year, now=now):
            item.event["details"]["source_format"] = format
            yield item
        return
    mapper = _JSON_MAPPERS.get(format)
    if mapper is None:
        raise ValueError(f"unknown format {format!r}: one of {', '.join(FORMATS)}")
    for number, record, line in json_records(lines):
        try:
            event = mapper(record)
        except (ValueError, TypeError, AttributeError, OverflowError, OSError) as exc:
            raise ImportFailure(number, f"{format} record: {exc}") from exc
        details = event["details"]
        details["source_format"] = format
        details["source_record"] = text = line if line is not None else record_text(record)
        if "id" not in event:  # no id of its own: the record's text names it
            event["id"] = stable_id(format, hashlib.sha256(text.encode()).hexdigest())
        yield ImportedEvent(number, event)
