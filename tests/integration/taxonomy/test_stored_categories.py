"""Stored categories are derived data: ``catch_up`` stores the category of every event, counts them per class,
classifies history again when the taxonomy changes, and two writers never store a range twice; on SQLite and
PostgreSQL."""

from __future__ import annotations

import tomllib

from analytics.taxonomy import Taxonomy, default_taxonomy
from models.categories import CategoryStore
from models.records import Actor, NewEvent
from models.schema import prepare
from pipelines.categories import catch_up
from qerberos.package_data import config_file
from qerberos.settings import Settings

AUTHENTICATION, OTHER, API = 3002, 0, 6003


def _event(type_: str, verdict: str = "ALLOW") -> NewEvent:
    return NewEvent(type=type_, ref="r:1", actor=Actor("did:squid:a"), layer="portal", verdict=verdict, source="t")


def test_history_is_classified_counted_and_classified_again_after_a_taxonomy_change(backend_settings: Settings):
    with prepare(backend_settings) as ledger:
        ledger.append(
            [_event("user.signin", "DENY"), _event("auth.login"), _event("frobnicate"), _event("report.view")]
        )
        taxonomy = default_taxonomy()
        assert 4 == catch_up(ledger.engine, taxonomy, batch_rows=3)
        store = CategoryStore(ledger.engine)
        assert {AUTHENTICATION: 2, OTHER: 1, API: 1} == store.class_counts()
        assert (AUTHENTICATION, 1, 2) == store.categories(0, 1)[0]
        assert 0 == catch_up(ledger.engine, taxonomy)  # nothing new

        ledger.append([_event("frobnicate")])
        assert 1 == catch_up(ledger.engine, taxonomy)
        assert {AUTHENTICATION: 2, OTHER: 2, API: 1} == store.class_counts()

        raw = tomllib.loads(config_file("taxonomy.toml").read_text(encoding="utf-8"))
        raw["rules"].insert(0, {"types": ["frob*"], "class": "api_activity", "activity": "update"})
        changed = Taxonomy(raw, "changed")
        assert 5 == catch_up(ledger.engine, changed)  # history again, under the new taxonomy
        assert {AUTHENTICATION: 2, API: 3} == store.class_counts()
        assert changed.digest == store.state().digest


def test_a_writer_that_lost_the_race_stores_nothing(sqlite_settings: Settings):
    with prepare(sqlite_settings) as ledger:
        ledger.append([_event("login")])
        store = CategoryStore(ledger.engine)
        store.reset(default_taxonomy().digest)
        state = store.state()
        assert store.append(state, [(0, AUTHENTICATION, 1, 1)], 1)
        assert not store.append(state, [(0, AUTHENTICATION, 1, 1)], 1)
        assert 1 == store.stored()
