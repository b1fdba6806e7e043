"""Append an event frame (``models.event_frame``: a simulation, an export) to the ledger, in batches.

Idempotent by event id: the ledger recognises an event it already holds, so ingesting the same frame twice
appends nothing the second time. A checkpoint is signed at the end, so the events are provable at once.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator

import polars as pl

from models.ledger import Ledger
from models.records import Actor, NewEvent

__all__ = ["INGEST_BATCH", "ingest_events"]

INGEST_BATCH = 1_000


def _new_events(events: pl.DataFrame, source: str) -> Iterator[NewEvent]:
    for row in events.iter_rows(named=True):
        occurred: dt.datetime = row["occurred_at"]
        yield NewEvent(
            type=row["type"],
            ref=row["ref"],
            actor=Actor(row["squid_id"], row["sub_id"], row["dao_id"]),
            layer=row["layer"],
            verdict=row["verdict"],
            source=source,
            details=json.loads(row["details"]) if row["details"] is not None else None,
            id=uuid.UUID(row["id"]),
            occurred_at=occurred,
        )


def ingest_events(
    ledger: Ledger, events: pl.DataFrame, *, source: str, progress: Callable[[int, int], None] | None = None
) -> int:
    """Append ``events`` in batches of ``INGEST_BATCH``, then sign a checkpoint; how many were new."""
    appended = 0
    batch: list[NewEvent] = []
    for event in _new_events(events, source):
        batch.append(event)
        if len(batch) == INGEST_BATCH:
            appended += sum(r.created for r in ledger.append(batch))
            batch = []
            if progress is not None:
                progress(appended, events.height)
    if batch:
        appended += sum(r.created for r in ledger.append(batch))
    if progress is not None:
        progress(appended, events.height)
    ledger.checkpoint(force=True)
    return appended
