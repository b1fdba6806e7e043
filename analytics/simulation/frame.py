"""From integer batches to the event frame of TEAM.md, the ground-truth labels and upstream requests."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from analytics.simulation.attacks import Attack
from analytics.simulation.catalog import (
    ATTACK_COUNTRIES,
    ATTACK_DEVICES,
    CONVENTIONS,
    COUNTRIES,
    DEVICES,
    KINDS,
    LAYER_NAMES,
)
from analytics.simulation.population import Population
from analytics.simulation.traffic import Batch
from models.event_frame import EVENT_SCHEMA

LABEL_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "squid_id": pl.String(),
    "technique": pl.String(),
    "attack": pl.String(),
    "attack_id": pl.Int32(),
    "occurred_at": pl.Datetime("ms", "UTC"),
}


def uuid4_strings(rng: np.random.Generator, count: int) -> pl.Series:
    """``count`` random version-4 UUIDs as text, vectorised (deterministic for the generator)."""
    raw = np.frombuffer(rng.bytes(16 * count), dtype=np.uint8).reshape(count, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), count, [None, pa.py_buffer(raw.tobytes())])
    hexed = pl.Series(pa.array(fixed, type=pa.binary())).bin.encode("hex")
    parts = [hexed.str.slice(a, b - a) for a, b in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))]
    return pl.select(pl.concat_str([p.alias(str(i)) for i, p in enumerate(parts)], separator="-")).to_series()


def _lookup(values: list[str], indices: np.ndarray) -> pl.Series:
    index = pl.Series(indices, dtype=pl.Int64)
    return pl.Series(values, dtype=pl.String).gather(pl.select(pl.when(index >= 0).then(index)).to_series())


def _type_names(ev: Batch, population: Population) -> pl.Series:
    """Each event's type in the convention of the module instance serving its identity (``Identity.naming``)."""
    names = [kind.name(convention) for _, kind in KINDS for convention in range(len(CONVENTIONS))]
    naming = np.stack([who.naming for who in population.identities]).astype(np.int64)
    kind_layer = np.array([layer for layer, _ in KINDS])
    return _lookup(names, ev["kind"] * len(CONVENTIONS) + naming[ev["squid"], kind_layer[ev["kind"]]])


def build_frames(
    rng: np.random.Generator, events: Batch, population: Population, attacks: list[Attack], start: dt.datetime
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Order by time, number from 0, resolve strings; split the attack column off into the labels."""
    order = np.lexsort((np.arange(len(events["ts"])), events["ts"]))
    ev = {name: column[order] for name, column in events.items()}
    tables = population.tables
    kind_layer = [LAYER_NAMES[layer] for layer, _ in KINDS]
    start_ms = int(start.timestamp() * 1000)
    frame = pl.DataFrame(
        {
            "seq": np.arange(len(order), dtype=np.int64),
            "id": uuid4_strings(rng, len(order)),
            "type": _type_names(ev, population),
            "ref": _lookup(tables.strings["ref"], ev["ref"]),
            "squid_id": _lookup(tables.strings["squid"], ev["squid"]),
            "sub_id": _lookup(tables.strings["sub"], ev["sub"]),
            "dao_id": _lookup(tables.strings["dao"], ev["dao"]),
            "layer": _lookup(kind_layer, ev["kind"]),
            "verdict": _lookup(["ALLOW", "DENY", "WARN"], ev["verdict"]),
            "occurred_at": pl.Series(ev["ts"] + start_ms).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"),
            "_ip": _lookup(tables.strings["ip"], ev["ip"]),
            "_country": _lookup([c for c, _, _ in COUNTRIES] + [c for c, _ in ATTACK_COUNTRIES], ev["country"]),
            "_device": _lookup(list(DEVICES + ATTACK_DEVICES), ev["device"]),
            "_size": ev["size"],
            "_attack": ev["attack"],
        }
    )
    q = pl.lit('"')
    details = pl.concat_str(
        [
            pl.lit('{"ip":'),
            q,
            pl.col("_ip"),
            q,
            pl.lit(',"country":'),
            q,
            pl.col("_country"),
            q,
            pl.lit(',"device":'),
            q,
            pl.col("_device"),
            q,
            pl.lit(',"operation":'),
            q,
            pl.col("layer"),
            pl.lit("."),
            pl.col("type"),
            q,
            pl.lit(',"size_bytes":'),
            pl.col("_size").cast(pl.String),
            pl.lit("}"),
        ]
    )
    frame = frame.with_columns(details=details)
    attack_table = pl.DataFrame(
        {
            "_attack": [a.attack_id for a in attacks],
            "technique": [a.technique for a in attacks],
            "attack": [a.name for a in attacks],
        },
        schema={"_attack": pl.Int64, "technique": pl.String, "attack": pl.String},
    )
    labels = (
        frame.filter(pl.col("_attack") >= 0)
        .select("id", "squid_id", "_attack", "occurred_at")
        .join(attack_table, on="_attack", how="left", maintain_order="left")
        .select(
            "id", "squid_id", "technique", "attack", pl.col("_attack").cast(pl.Int32).alias("attack_id"), "occurred_at"
        )
    )
    return frame.select(list(EVENT_SCHEMA)), labels


def labels_path(events_path: Path) -> Path:
    """``sim.parquet`` -> ``sim.labels.parquet``: the ground truth kept beside, never inside, the events."""
    return events_path.with_name(events_path.name.removesuffix(".parquet") + ".labels.parquet")


def to_requests(events: pl.DataFrame) -> Iterator[dict[str, Any]]:
    """Each event in the upstream request shape (``AuditEventRequest`` of the contract)."""
    for row in events.iter_rows(named=True):
        actor = {"squidId": row["squid_id"]}
        if row["sub_id"] is not None:
            actor["subId"] = row["sub_id"]
        if row["dao_id"] is not None:
            actor["daoId"] = row["dao_id"]
        yield {
            "id": row["id"],
            "type": row["type"],
            "ref": row["ref"],
            "actor": actor,
            "layer": row["layer"],
            "verdict": row["verdict"],
            "details": json.loads(row["details"]) if row["details"] is not None else None,
            "timestamp": row["occurred_at"].isoformat().replace("+00:00", "Z"),
        }
