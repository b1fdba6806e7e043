"""The ledger's events and the alerts as OCSF NDJSON (``analytics.ocsf_out``), for ``qerberos export --format
ocsf`` and the API's ``format=ocsf``: one event per line, in sequence order, read range by range."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

from analytics.ocsf_out import detection_finding, ocsf_event
from analytics.taxonomy import Taxonomy
from models.alerts import AlertView
from models.ledger import Ledger
from models.records import LedgerRecord

__all__ = ["alert_lines", "event_lines", "write_alerts", "write_events"]

_RANGE = 5_000


def event_lines(records: Iterable[LedgerRecord], taxonomy: Taxonomy, origin: str) -> Iterator[str]:
    """Each record as one line of OCSF JSON (with its newline)."""
    for record in records:
        category = taxonomy.classify(record.type, record.layer, record.verdict, record.details)
        yield json.dumps(ocsf_event(record, category, taxonomy, origin=origin), ensure_ascii=False) + "\n"


def alert_lines(alerts: Iterable[AlertView], taxonomy: Taxonomy, origin: str) -> Iterator[str]:
    """Each alert as one line of OCSF Detection Finding JSON (with its newline)."""
    for alert in alerts:
        yield json.dumps(detection_finding(alert, taxonomy, origin=origin), ensure_ascii=False) + "\n"


def write_events(
    ledger: Ledger, out: TextIO, taxonomy: Taxonomy, *, progress: Callable[[int, int], None] | None = None
) -> int:
    """Write every event of the ledger (as it is when the export starts) to ``out``; returns how many."""
    size = ledger.size()
    written, last = 0, -1
    while written < size:
        records = ledger.records_after(last, min(_RANGE, size - written))
        if not records:
            break
        out.writelines(event_lines(records, taxonomy, ledger.origin))
        written, last = written + len(records), records[-1].seq
        if progress is not None:
            progress(written, size)
    return written


def write_alerts(alerts: Iterable[AlertView], out: TextIO, taxonomy: Taxonomy, origin: str) -> int:
    """Write ``alerts`` to ``out`` as Detection Findings; returns how many."""
    count = 0
    for line in alert_lines(alerts, taxonomy, origin):
        out.write(line)
        count += 1
    return count
