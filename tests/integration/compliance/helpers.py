"""A small simulated ledger for the report tests: a week of traffic of a few dozen identities, an
erasure, and checkpoints, appended through ``Ledger.append`` as production does."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator

import polars as pl

from analytics.simulation import SimulationConfig, simulate
from models.ledger import Ledger
from models.records import Actor, NewEvent

START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
END = START + dt.timedelta(days=7)
BATCH = 2_000


def new_events(frame: pl.DataFrame) -> Iterator[NewEvent]:
    for row in frame.iter_rows(named=True):
        yield NewEvent(
            type=row["type"],
            ref=row["ref"],
            actor=Actor(row["squid_id"], row["sub_id"], row["dao_id"]),
            layer=row["layer"],
            verdict=row["verdict"],
            source="cli",
            details=json.loads(row["details"]) if row["details"] is not None else None,
            id=uuid.UUID(row["id"]),
            occurred_at=row["occurred_at"],
        )


def fill(ledger: Ledger, *, identities: int = 24, days: int = 7, seed: int = 7) -> pl.DataFrame:
    """Append simulated traffic, erase one identity; return the simulated events."""
    events = simulate(SimulationConfig(identities, days, seed, events_per_day=12.0)).events
    batch: list[NewEvent] = []
    for event in new_events(events):
        batch.append(event)
        if len(batch) == BATCH:
            ledger.append(batch)
            batch = []
    if batch:
        ledger.append(batch)
    ledger.checkpoint(force=True)
    return events
