"""The ledger on SQLite and PostgreSQL: gap-free appends, idempotency, search, refusal to change history."""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import datetime as dt
import os
import stat
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from models.database import create_ledger_engine, create_schema
from models.ledger import Ledger, checkpoint_size, initialise
from models.records import Actor, SearchQuery
from models.schema import create_tables
from models.verification import verify_ledger
from qerberos import verifier
from qerberos.errors import ConflictError, NotFoundError, ValidationError
from qerberos.settings import Settings
from tests.conftest import make_settings
from tests.integration.ledger.helpers import event


def test_appends_get_gap_free_sequence_numbers_and_a_hash_chain(ledger: Ledger) -> None:
    first = ledger.append([event(0), event(1)])
    second = ledger.append([event(2)])
    assert [result.record.seq for result in first + second] == [0, 1, 2]
    assert all(result.created for result in first + second)
    assert ledger.size() == 3
    assert verify_ledger(ledger).intact


def test_same_id_same_content_returns_the_original_record(ledger: Ledger) -> None:
    event_id = uuid.uuid4()
    original = ledger.append([event(1, event_id=event_id)])[0]
    retry = ledger.append([event(1, event_id=event_id)])[0]
    assert (original.record, True, False) == (retry.record, original.created, retry.created)
    assert ledger.size() == 1


def test_same_id_other_content_is_a_conflict_and_appends_nothing(ledger: Ledger) -> None:
    event_id = uuid.uuid4()
    ledger.append([event(1, event_id=event_id)])
    with pytest.raises(ConflictError) as caught:
        ledger.append([event(5), event(2, event_id=event_id)])
    assert {"ref", "details", "timestamp"} <= set(caught.value.details["fields"])
    assert ledger.size() == 1


def test_another_submitters_id_is_a_conflict_that_describes_nothing_of_their_event(ledger: Ledger) -> None:
    event_id = uuid.uuid4()
    ledger.append([event(1, event_id=event_id, source="local:alice")])
    answers = []
    for guess in (event(1, event_id=event_id, source="local:mallory"), event(2, event_id=event_id, source="squid:m")):
        with pytest.raises(ConflictError) as caught:
            ledger.append([event(7, source=guess.source), guess])
        answers.append((caught.value.message, caught.value.details))
    taken = (f"event id {event_id} is already taken", {"index": 1, "id": str(event_id)})
    assert [taken, taken] == answers  # the exact copy and a wrong guess answer alike
    assert ledger.size() == 1


def test_the_submitters_own_retry_still_answers_its_record_and_its_differences(ledger: Ledger) -> None:
    event_id = uuid.uuid4()
    original = ledger.append([event(1, event_id=event_id, source="local:alice")])[0]
    retry = ledger.append([event(1, event_id=event_id, source="local:alice")])[0]
    with pytest.raises(ConflictError) as caught:
        ledger.append([event(1, event_id=event_id, source="local:alice", verdict="DENY")])
    assert (original.record, False) == (retry.record, retry.created)
    assert ["verdict"] == caught.value.details["fields"]


def test_duplicate_ids_within_one_batch_are_one_event(ledger: Ledger) -> None:
    event_id = uuid.uuid4()
    results = ledger.append([event(1, event_id=event_id), event(1, event_id=event_id)])
    assert (results[0].created, results[1].created) == (True, False)
    assert ledger.size() == 1


def test_an_invalid_event_rejects_the_whole_batch(ledger: Ledger) -> None:
    bad = event(3)
    bad = type(bad)(
        **{**{f: getattr(bad, f) for f in bad.__slots__}, "occurred_at": dt.datetime(1960, 1, 1, tzinfo=dt.UTC)}
    )
    with pytest.raises(ValidationError) as caught:
        ledger.append([event(1), bad])
    assert list(caught.value.details) == ["1"]
    assert ledger.size() == 0


def test_get_and_search_with_filters_and_cursor(ledger: Ledger) -> None:
    ledger.append([event(n, actor=f"did:squid:{'bob' if n % 3 == 0 else 'alice'}") for n in range(10)])
    found = ledger.get(ledger.get_by_seq(4).id)
    assert found.seq == 4 and dict(found.details or {}) == {"n": 4, "ip": "10.0.0.7"}
    with pytest.raises(NotFoundError):
        ledger.get(uuid.uuid4())

    page = ledger.search(SearchQuery(actor="did:squid:bob", limit=2))
    assert (page.total_count, page.has_more, [r.seq for r in page.records]) == (4, True, [9, 6])
    rest = ledger.search(SearchQuery(actor="did:squid:bob", limit=2, cursor=page.next_cursor))
    assert ([r.seq for r in rest.records], rest.has_more, rest.next_cursor) == ([3, 0], False, None)

    window = SearchQuery(
        start=dt.datetime(2026, 1, 1, 0, 2, tzinfo=dt.UTC), end=dt.datetime(2026, 1, 1, 0, 4, tzinfo=dt.UTC)
    )
    assert [r.seq for r in ledger.search(window).records] == [4, 3, 2]
    assert [r.seq for r in ledger.search(SearchQuery(limit=1, offset=8)).records] == [1]
    with pytest.raises(ValidationError):
        ledger.search(SearchQuery(cursor="garbage!"))


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET ref = 'x'",
        "DELETE FROM ledger_entries",
        "UPDATE merkle_nodes SET hash = hash",
        "DELETE FROM checkpoints",
        "UPDATE event_details SET details = '{}'",
    ],
)
def test_the_database_refuses_to_change_history(ledger: Ledger, statement: str) -> None:
    ledger.append([event(n) for n in range(4)])
    ledger.checkpoint(force=True)
    with pytest.raises(DBAPIError), ledger.engine.begin() as connection:
        connection.execute(text(statement))
    assert verify_ledger(ledger).intact


def test_checkpoint_is_signed_and_proofs_verify_against_it(ledger: Ledger) -> None:
    ledger.append([event(n) for n in range(7)])
    note = ledger.checkpoint(force=True)
    checkpoint = verifier.verify_checkpoint(note, ledger.verifier_keys(), ledger.origin)
    assert 7 == checkpoint_size(note) == checkpoint.size

    proof = ledger.inclusion_proof(5)
    assert note == proof.checkpoint
    verifier.verify_inclusion(5, 7, proof.leaf_hash, proof.proof, checkpoint.root_hash)

    ledger.append([event(n) for n in range(7, 12)])
    later = verifier.verify_checkpoint(ledger.checkpoint(force=True), ledger.verifier_keys(), ledger.origin)
    consistency = ledger.consistency_proof(7, 12)
    verifier.verify_consistency(7, 12, checkpoint.root_hash, later.root_hash, consistency.proof)


def test_checkpoints_wait_for_the_interval_unless_forced(ledger: Ledger) -> None:
    ledger.append([event(0)])
    first = ledger.checkpoint(force=True)
    ledger.append([event(1)])
    assert first == ledger.checkpoint()
    assert checkpoint_size(ledger.checkpoint(force=True)) == 2


def test_erasure_removes_details_and_everything_still_verifies(ledger: Ledger) -> None:
    ledger.append([event(0, actor="did:squid:carol"), event(1), event(2, actor="did:squid:carol")])
    ledger.checkpoint(force=True)
    assert ledger.erase("did:squid:carol", requested_by="test") == 2
    assert ledger.get_by_seq(0).details is None and ledger.get_by_seq(1).details is not None
    erasure = ledger.get_by_seq(3)
    assert (erasure.type, dict(erasure.details or {})) == (
        "gdpr.erasure",
        {"erasedEvents": 2, "article": "GDPR Art. 17"},
    )
    assert verify_ledger(ledger).intact


def test_proof_arguments_out_of_range_are_validation_errors_naming_them(ledger: Ledger) -> None:
    ledger.append([event(0), event(1)])
    for call, details in (
        (lambda: ledger.inclusion_proof(2, 2), {"leafIndex": 2, "treeSize": 2}),
        (lambda: ledger.inclusion_proof(-1, 2), {"leafIndex": -1}),
        (lambda: ledger.consistency_proof(2, 1), {"first": 2, "second": 1}),
        (lambda: ledger.consistency_proof(1, 3), {"treeSize": 3, "ledgerSize": 2}),
        (lambda: ledger.inclusion_proof(0, 3), {"treeSize": 3, "ledgerSize": 2}),
    ):
        with pytest.raises(ValidationError) as raised:
            call()
        assert details == raised.value.details


def test_positions_beyond_bigint_are_validation_errors_before_any_statement(ledger: Ledger) -> None:
    ledger.append([event(0), event(1)])
    for call, details in (
        (lambda: ledger.inclusion_proof(0, 2**64), {"treeSize": 2**64}),  # OverflowError in sqlite3
        (lambda: ledger.inclusion_proof(2**63, 2**64), {"leafIndex": 2**63, "treeSize": 2**64}),
        (lambda: ledger.consistency_proof(1, 2**64), {"second": 2**64}),
        (
            lambda: ledger.search(SearchQuery(cursor="c2VxOjkyMjMzNzIwMzY4NTQ3NzU4MDg")),
            {"cursor": "not a cursor this service issued"},
        ),
    ):
        with pytest.raises(ValidationError) as raised:
            call()
        assert details == raised.value.details
    assert [1, 0] == [record.seq for record in ledger.search(SearchQuery(cursor=_cursor_at(2))).records]


def _cursor_at(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def test_a_nul_character_in_a_text_column_is_refused_alike_on_both_backends(ledger: Ledger) -> None:
    good = event(0)
    bad = dataclasses.replace(event(1), ref="a\x00b", actor=Actor("did:squid:\x00"))

    with pytest.raises(ValidationError) as raised:
        ledger.append([good, bad])

    assert {"1": {"ref": "holds a NUL character", "actor.squidId": "holds a NUL character"}} == raised.value.details
    assert 0 == ledger.size()
    ledger.append([good, dataclasses.replace(bad, ref="a\\x00b", actor=Actor("did:squid:x"))])  # text, not NUL
    assert 2 == ledger.size()
    assert verify_ledger(ledger).intact


def test_unsigned_age_counts_only_entries_no_checkpoint_covers(ledger: Ledger) -> None:
    """What the stale-checkpoint alert watches: an idle log whose checkpoint covers it reads 0, however old."""
    assert 0.0 == ledger.unsigned_age_seconds()  # nothing appended
    ledger.append([event(0)])
    ledger.checkpoint(force=True)
    ledger.append([event(1), event(2)])
    time.sleep(0.2)
    waited = ledger.unsigned_age_seconds()
    ledger.checkpoint(force=True)
    time.sleep(0.2)
    assert (True, 0.0, True) == (waited >= 0.2, ledger.unsigned_age_seconds(), ledger.checkpoint_age_seconds() >= 0.2)


def test_sqlite_planner_statistics_are_refreshed_when_the_log_doubles(ledger: Ledger) -> None:
    if ledger.engine.dialect.name != "sqlite":
        return  # PostgreSQL's autovacuum keeps its own statistics
    ledger.append([event(n, actor=f"did:squid:user{n % 50}") for n in range(400)])
    ledger.checkpoint(force=True)
    with ledger.engine.connect() as connection:
        plan = " ".join(
            str(row[-1])
            for row in connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT seq FROM ledger_entries WHERE actor_squid_id = 'did:squid:user7' "
                "AND type = 'access' ORDER BY seq DESC LIMIT 10"
            )
        )
    assert "ix_ledger_entries_actor_seq" in plan


def _modes(directory: Path, pattern: str) -> dict[str, int]:
    return {path.name: stat.S_IMODE(path.stat().st_mode) for path in directory.glob(pattern)}


def test_sqlite_database_and_its_wal_are_created_private_whatever_the_umask_and_older_ones_made_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    umask = os.umask(0o022)  # the usual default, which made them 0644
    try:
        settings = make_settings(monkeypatch, tmp_path / "home")
        with initialise(settings) as ledger:
            ledger.append([event(0)])
            private = _modes(settings.home, "qerberos.db*")
            home = stat.S_IMODE(settings.home.stat().st_mode)
        older = tmp_path / "older.db"
        for suffix in ("", "-wal"):
            Path(f"{older}{suffix}").write_bytes(b"")  # as an earlier version left them: 0644
        create_ledger_engine(f"sqlite:///{older}").dispose()
    finally:
        os.umask(umask)

    assert {"qerberos.db": 0o600, "qerberos.db-wal": 0o600, "qerberos.db-shm": 0o600} == private
    assert 0o700 == home
    assert {"older.db": 0o600, "older.db-wal": 0o600} == _modes(tmp_path, "older.db*")


def test_create_schema_adds_an_index_added_since_the_table_was_made(ledger: Ledger) -> None:
    with ledger.engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_merkle_nodes_tile_levels"))  # a database made before the index
    create_schema(ledger.engine)
    assert "ix_merkle_nodes_tile_levels" in {
        index["name"] for index in inspect(ledger.engine).get_indexes("merkle_nodes")
    }


@pytest.mark.parametrize("round_", range(3))
def test_processes_starting_at_once_each_create_the_schema_without_failing(
    backend_settings: Settings, round_: int
) -> None:
    """Replicas of the compose stack start together on an empty database; each prepares every table and guard.
    Before the schema was one sequenced transaction, PostgreSQL refused one of two concurrent ``CREATE OR
    REPLACE FUNCTION`` ("tuple concurrently updated") and that replica exited."""
    starters = 4
    backend_settings.home.mkdir(parents=True)
    engines = [create_ledger_engine(backend_settings.database_url) for _ in range(starters)]
    together = threading.Barrier(starters)

    def start(engine: Engine) -> None:
        together.wait()
        create_tables(engine)

    try:
        with concurrent.futures.ThreadPoolExecutor(starters) as pool:
            for outcome in [pool.submit(start, engine) for engine in engines]:
                outcome.result()
        assert {"ledger_entries", "identities", "alerts"} <= set(inspect(engines[0]).get_table_names())
    finally:
        for engine in engines:
            engine.dispose()
