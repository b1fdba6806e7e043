"""The simulator: deterministic per seed, every attack present and labelled apart from the events."""

from __future__ import annotations

import datetime as dt
import functools
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import typer
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from analytics.labels import label_windows
from analytics.live_events import live_event
from analytics.rules import RuleEngine, RuleHit, load_detection_config
from analytics.simulation import ATTACKS, EVENT_SCHEMA, SimulationConfig, SimulationResult, simulate, to_requests
from analytics.simulation.catalog import COUNTRIES, DEVICES
from analytics.simulation.population import Identity, Population, build_population
from analytics.taxonomy import OTHER_CLASS, default_taxonomy
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
    # The fast probe's windows are mostly denials; the slow one's hold a probe or two among ordinary events.
    fast = label_windows(features, _result().labels.filter(pl.col("attack") == "permission_probing"))
    assert (fast.filter(pl.col("technique") == "T1069")["deny_ratio"] > 0.5).all()


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


@functools.cache
def _population() -> Population:
    """The population ``simulate(CONFIG)`` drew: the first draws of its generator."""
    return build_population(np.random.default_rng(CONFIG.seed), CONFIG.identities, CONFIG.events_per_day, CONFIG.days)


def _normal_events_of(who: Identity) -> pl.DataFrame:
    """``who``'s events that no attack produced, with the country, address and device of their details."""
    squid = _population().tables.strings["squid"][who.index]
    return (
        _result()
        .events.filter(pl.col("squid_id") == squid, ~pl.col("id").is_in(_result().labels["id"].implode()))
        .with_columns(
            country=pl.col("details").str.json_path_match("$.country"),
            ip=pl.col("details").str.json_path_match("$.ip"),
            device=pl.col("details").str.json_path_match("$.device"),
            day=(pl.col("occurred_at") - CONFIG.start).dt.total_days(),
        )
    )


def test_newcomers_begin_in_the_middle_of_the_period_and_are_no_victims() -> None:
    newcomers = [who for who in _population().identities if who.joined_day > 0]
    assert 1 <= len(newcomers) <= 0.25 * CONFIG.identities
    victims = set(_result().labels["squid_id"])
    for who in newcomers:
        first = _result().events.filter(pl.col("squid_id") == _population().tables.strings["squid"][who.index])
        assert first["occurred_at"].min() >= CONFIG.start + dt.timedelta(days=max(1, CONFIG.days // 3))
        assert first.height >= 5 * (CONFIG.days - who.joined_day)  # ordinary traffic from then on
        assert _population().tables.strings["squid"][who.index] not in victims


def test_travellers_sign_in_from_a_second_country_with_new_addresses_at_its_waking_hours() -> None:
    travellers = [who for who in _population().identities if who.trip is not None]
    assert travellers
    for who in travellers:
        assert who.trip is not None
        events = _normal_events_of(who)
        home, (away_country, offset, prefix) = COUNTRIES[who.home][0], COUNTRIES[who.trip.country]
        away = events.filter(pl.col("country") == away_country)
        assert {home, away_country} == set(events["country"])
        assert away["day"].is_between(who.trip.first_day, who.trip.last_day).all()
        assert away["ip"].str.starts_with(prefix + ".").all()
        assert set(away["ip"]).isdisjoint(events.filter(pl.col("country") == home)["ip"])
        local_hour = (away["occurred_at"].dt.hour() + offset) % 24
        assert local_hour.is_between(6, 22).mean() >= 0.8


def test_a_new_device_appears_mid_period_and_stays() -> None:
    changed = [who for who in _population().identities if who.device_change is not None]
    assert changed
    for who in changed:
        assert who.device_change is not None
        events = _normal_events_of(who)
        new = events.filter(pl.col("device") == DEVICES[who.device_change.device])
        assert new["day"].min() >= who.device_change.day
        assert new.height >= 0.5 * events.filter(pl.col("day") >= who.device_change.day).height


def test_modules_name_events_in_several_conventions_all_classified_by_the_taxonomy() -> None:
    taxonomy = default_taxonomy()
    kinds = _result().events.select("type", "layer", "verdict").unique()
    categories = {row: taxonomy.classify(*row) for row in kinds.iter_rows()}
    assert [] == [row for row, category in categories.items() if category.class_key == OTHER_CLASS]
    sign_ins = {type_ for (type_, _, _), category in categories.items() if category.is_sign_in()}
    assert {"login", "session.login", "UserLoggedIn", "authentication", "auth.signin", "UserAuthenticated"} == sign_ins
    per_layer = kinds.group_by("layer").agg(pl.col("type").n_unique())
    assert (per_layer["type"] > 3).all()
    attack_types = _result().events.join(_result().labels.select("id"), on="id")["type"]
    assert attack_types.n_unique() > _result().labels["attack"].n_unique()  # attacks speak every convention too


def test_a_spray_comes_from_one_address_over_at_least_twenty_accounts_with_one_or_two_tries_each() -> None:
    spray = _labelled_events("password_spraying")
    assert 1 == spray["details"].str.json_path_match("$.ip").n_unique()
    tries = spray.group_by("squid_id").len()["len"]
    assert tries.len() >= 20
    assert tries.is_between(1, 2).all()
    assert all(category.is_sign_in() for category in map(default_taxonomy().classify, *_columns(spray)))
    hits = _replay(spray, "password_spraying")
    assert hits and {hit.squid_id for hit in hits} == {"ip:" + spray["details"].str.json_path_match("$.ip")[0]}


@pytest.mark.parametrize("attack", ["brute_force", "permission_probing", "bulk_download"])
def test_slow_attacks_stay_below_the_rule_their_fast_variant_fires(attack: str) -> None:
    assert _replay(_labelled_events(attack), attack)
    slow = _labelled_events("slow_" + attack)
    assert slow.height >= 20
    assert [] == _replay(slow, attack)


def _labelled_events(attack: str) -> pl.DataFrame:
    ids = _result().labels.filter(pl.col("attack") == attack)["id"]
    return _result().events.filter(pl.col("id").is_in(ids.implode()))


def _columns(events: pl.DataFrame) -> tuple[list[str], list[str], list[str]]:
    return events["type"].to_list(), events["layer"].to_list(), events["verdict"].to_list()


def _replay(events: pl.DataFrame, rule_name: str) -> list[RuleHit]:
    """The hits of the rule of ``config/rules.toml`` named ``rule_name`` over ``events`` alone, in seq order."""
    config = load_detection_config()
    engine = RuleEngine(rule for rule in config.rules if rule.name == rule_name)
    hits = []
    for row in events.sort("seq").iter_rows(named=True):
        event = live_event(
            config.taxonomy, row["seq"], row["squid_id"], row["type"], row["ref"], row["layer"], row["verdict"],
            int(row["occurred_at"].timestamp() * 1000), row["dao_id"], row["details"],
        )  # fmt: skip
        hits.extend(engine.observe(event))
    return hits
