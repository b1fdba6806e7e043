"""The simulator: deterministic per seed, every attack present and labelled apart from the events."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import polars as pl
import pytest
import typer
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from analytics.labels import label_windows
from analytics.simulation import ATTACKS, EVENT_SCHEMA, SimulationConfig, SimulationResult, simulate, to_requests
from analytics.window_features import compute_features
from cli import simulate as simulate_cli
from models.ledger import initialise
from models.reader import scan_events
from models.wire_events import convert_event
from qerberos.settings import Settings

CONFIG = SimulationConfig(identities=40, days=8, seed=7)


@functools.cache
def _result() -> SimulationResult:
    return simulate(CONFIG)


def test_same_seed_gives_the_same_events_ids_and_labels() -> None:
    again = simulate(CONFIG)
    assert_frame_equal(_result().events, again.events)
    assert_frame_equal(_result().labels, again.labels)


def test_another_seed_gives_other_traffic() -> None:
    other = simulate(SimulationConfig(identities=40, days=8, seed=8))
    assert set(other.events["id"]).isdisjoint(_result().events["id"])


def test_events_have_the_event_frame_schema_in_seq_order() -> None:
    events = _result().events
    assert dict(events.schema) == EVENT_SCHEMA
    assert list(range(events.height)) == events["seq"].to_list()
    assert events["id"].is_unique().all()
    assert events["occurred_at"].is_sorted()
    assert events.select(pl.exclude("sub_id", "dao_id").null_count()).sum_horizontal().item() == 0
    assert {"ALLOW", "DENY", "WARN"} == set(events["verdict"])
    assert {"qdrive", "qwallet", "qmail", "qmarket", "qchat", "qsocial", "dao", "qonsent", "squid"} == set(
        events["layer"]
    )
    assert events["squid_id"].str.starts_with("did:squid:").all()
    assert events.filter(pl.col("layer") == "qdrive")["ref"].str.contains(r"^file:Qm[1-9A-HJ-NP-Za-km-z]{44}$").all()


def test_every_attack_is_present_with_its_technique() -> None:
    labels = _result().labels
    found = dict(labels.select("attack", "technique").unique().iter_rows())
    assert {name: technique for name, (technique, _, _) in ATTACKS.items()} == found


def test_labels_point_at_events_and_stay_out_of_them() -> None:
    events, labels = _result().events, _result().labels
    joined = labels.join(events, on="id", how="left", suffix="_event")
    assert joined["seq"].null_count() == 0
    assert joined["squid_id"].to_list() == joined["squid_id_event"].to_list()
    assert joined["occurred_at"].to_list() == joined["occurred_at_event"].to_list()
    assert not {"attack", "technique", "label", "attack_id"} & set(events.columns)
    keys = {key for text in events["details"].sample(500, seed=1) for key in json.loads(text)}
    assert {"ip", "country", "device", "operation", "size_bytes"} == keys
    assert not events["details"].str.contains("T1[0-9]{3}").any()


def test_requests_follow_the_upstream_contract() -> None:
    events = _result().events.head(300)
    requests = list(to_requests(events))
    decoded = [convert_event(r) for r in requests]
    assert events["id"].to_list() == [str(d.id) for d in decoded]
    assert {"squidId"} <= set(requests[0]["actor"])
    assert requests[0]["timestamp"].endswith("Z")


def test_attack_windows_stand_out_from_normal_ones() -> None:
    features = compute_features(_result().events.lazy(), "1h").collect()
    labelled = label_windows(features, _result().labels)
    means = labelled.group_by("label").agg(pl.col("event_count").mean()).sort("label")["event_count"].to_list()
    assert means[1] > 3 * means[0]
    probing = labelled.filter(pl.col("technique") == "T1069")
    assert (probing["deny_ratio"] > 0.5).all()


def _app() -> typer.Typer:
    app = typer.Typer()
    simulate_cli.register(app)
    app.command("noop")(lambda: None)
    return app


def test_cli_writes_events_and_labels_beside_them(tmp_path: Path) -> None:
    out = tmp_path / "sim.parquet"
    result = CliRunner().invoke(
        _app(), ["simulate", "--identities", "12", "--days", "4", "--seed", "3", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(out).height > 0
    assert pl.read_parquet(tmp_path / "sim.labels.parquet").height > 0


def test_cli_refuses_without_a_destination() -> None:
    result = CliRunner().invoke(_app(), ["simulate", "--identities", "12"])
    assert result.exit_code == 2


def test_ingested_events_read_back_from_the_ledger_database(sqlite_settings: Settings, tmp_path: Path) -> None:
    initialise(sqlite_settings).close()
    small = simulate(SimulationConfig(identities=5, days=3, seed=2, events_per_day=6, attacks_per_kind=1))
    events = small.events.head(1_500)
    assert events.height == simulate_cli._ingest(events)
    back = scan_events(sqlite_settings.database_url, chunk_rows=400).collect()
    assert_frame_equal(events.drop("details"), back.drop("details"))
    assert [json.loads(t) for t in events["details"]] == [json.loads(t) for t in back["details"]]


@pytest.mark.parametrize("identities", [3, 4])
def test_tiny_populations_still_get_every_attack(identities: int) -> None:
    labels = simulate(SimulationConfig(identities=identities, days=3, seed=1, events_per_day=5)).labels
    assert set(ATTACKS) == set(labels["attack"])
