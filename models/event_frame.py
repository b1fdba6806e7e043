"""The ledger's rows as Polars frames: the one schema of every column ``models.reader`` hands out.

``FRAME_SCHEMA`` names and types each column once; a read asks for some of them:

- ``EVENT_COLUMNS``, the event frame of TEAM.md (``EVENT_SCHEMA``): what features, detectors, the simulator and
  Parquet exports hold. ``details`` is the JSON text, null once erased.
- ``PERIOD_COLUMNS``: what a compliance report's sections read of each event of its period: no ``id`` and no
  ``details``, but who submitted it (``source``), when it arrived (``received_at``) and whether its details
  are still held (``has_details``).

Nothing here touches a database (``models.reader`` does): analytics imports these names without SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

__all__ = [
    "EVENT_COLUMNS",
    "EVENT_SCHEMA",
    "FRAME_SCHEMA",
    "PERIOD_COLUMNS",
    "frame_schema",
    "scan_parquet_events",
]

FRAME_SCHEMA: dict[str, pl.DataType] = {
    "seq": pl.Int64(),
    "id": pl.String(),
    "type": pl.String(),
    "ref": pl.String(),
    "squid_id": pl.String(),
    "sub_id": pl.String(),
    "dao_id": pl.String(),
    "layer": pl.String(),
    "verdict": pl.String(),
    "source": pl.String(),
    "occurred_at": pl.Datetime("ms", "UTC"),
    "received_at": pl.Datetime("ms", "UTC"),
    "details": pl.String(),
    "has_details": pl.Boolean(),
}
EVENT_COLUMNS: tuple[str, ...] = (
    "seq", "id", "type", "ref", "squid_id", "sub_id", "dao_id", "layer", "verdict", "occurred_at", "details",
)  # fmt: skip
PERIOD_COLUMNS: tuple[str, ...] = (
    "seq", "type", "ref", "squid_id", "sub_id", "dao_id", "layer", "verdict", "source", "occurred_at", "received_at",
    "has_details",
)  # fmt: skip


def frame_schema(columns: Sequence[str]) -> dict[str, pl.DataType]:
    """The schema of a frame of ``columns`` (in that order)."""
    return {name: FRAME_SCHEMA[name] for name in columns}


EVENT_SCHEMA: dict[str, pl.DataType] = frame_schema(EVENT_COLUMNS)


def scan_parquet_events(path: str | Path) -> pl.LazyFrame:
    """An event frame from a Parquet export (a file, a directory or a glob), cast to the frame's types."""
    return pl.scan_parquet(path).select(pl.col(name).cast(dtype) for name, dtype in EVENT_SCHEMA.items())
