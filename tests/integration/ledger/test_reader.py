"""The event frame read back from the ledger's database, SQLite and PostgreSQL, in seq-range chunks."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analytics.simulation import SimulationConfig, simulate
from analytics.window_features import compute_features
from cli import simulate as simulate_cli
from models.event_frame import EVENT_SCHEMA
from models.ledger import Ledger, initialise
from models.reader import export_parquet, iter_database_chunks, scan_events
from pipelines.feature_table import write_feature_table
from qerberos.errors import LedgerError
from qerberos.settings import Settings

_EVENTS = 1_100  # the simulated traffic holds a little fewer: 997 events, so four chunks of 300


@pytest.fixture
def ingested(backend_settings: Settings) -> tuple[str, pl.DataFrame]:
    """The backend's URL and the simulated events appended to its ledger."""
    initialise(backend_settings).close()
    small = simulate(SimulationConfig(identities=5, days=3, seed=2, events_per_day=6, attacks_per_kind=1))
    events = small.events.head(_EVENTS)
    assert events.height > 900
    assert events.height == simulate_cli._ingest(events)
    return backend_settings.database_url, events


def _same_events(expected: pl.DataFrame, actual: pl.DataFrame) -> None:
    assert_frame_equal(expected.drop("details"), actual.drop("details"))
    assert [json.loads(t) for t in expected["details"]] == [json.loads(t) for t in actual["details"]]


def test_scan_reads_every_event_back_in_seq_order_across_chunks(ingested: tuple[str, pl.DataFrame]) -> None:
    url, events = ingested
    back = scan_events(url, chunk_rows=256).collect()
    assert EVENT_SCHEMA == dict(back.schema)
    _same_events(events, back)


def test_chunks_are_seq_ranges_of_at_most_chunk_rows(ingested: tuple[str, pl.DataFrame]) -> None:
    url, events = ingested
    chunks = list(iter_database_chunks(url, chunk_rows=300))
    starts = range(0, events.height, 300)
    assert [(low, min(low + 300, events.height) - 1) for low in starts] == [
        (c["seq"].min(), c["seq"].max()) for c in chunks
    ]
    assert all(c.height == c["seq"].max() - c["seq"].min() + 1 for c in chunks)


def test_projection_predicate_and_limit_reach_the_io_source(ingested: tuple[str, pl.DataFrame]) -> None:
    url, events = ingested
    denied = scan_events(url, chunk_rows=256).filter(pl.col("verdict") == "DENY").select("seq", "verdict").collect()
    assert_frame_equal(events.filter(pl.col("verdict") == "DENY").select("seq", "verdict"), denied)
    assert 10 == scan_events(url, chunk_rows=4).head(10).collect().height


def test_erased_details_read_back_as_null(ingested: tuple[str, pl.DataFrame], backend_settings: Settings) -> None:
    url, events = ingested
    erased = events.filter(pl.col("seq") == 3)["squid_id"][0]  # erasure is the only way details go
    with Ledger.from_settings(backend_settings) as ledger:
        ledger.erase(erased, requested_by="test")
    back = scan_events(url, chunk_rows=256).collect().head(events.height)  # the erasure event comes after
    owned = events.filter(pl.col("squid_id") == erased)["seq"].to_list()
    assert (True, owned) == (3 in owned, back.filter(pl.col("details").is_null())["seq"].to_list())
    _same_events(events.filter(~pl.col("seq").is_in(owned)), back.filter(pl.col("details").is_not_null()))


def test_export_parquet_holds_the_same_frame(ingested: tuple[str, pl.DataFrame], tmp_path: Path) -> None:
    url, events = ingested
    _same_events(events, pl.read_parquet(export_parquet(url, tmp_path / "events.parquet", chunk_rows=256)))


def test_features_from_the_database_equal_the_features_of_the_frame(
    ingested: tuple[str, pl.DataFrame], tmp_path: Path
) -> None:
    url, events = ingested
    out = write_feature_table(url, tmp_path / "features.parquet", ["1h", "1d"], chunk_rows=256)
    expected = pl.concat([compute_features(events.lazy(), w).collect() for w in ("1h", "1d")])
    assert_frame_equal(expected, pl.read_parquet(out))


def test_an_unreachable_database_is_a_ledger_error() -> None:
    with pytest.raises(LedgerError, match="cannot read the ledger"):
        list(iter_database_chunks("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"))
