"""What the ledger saves in round trips to the database must not change what it writes or reads.

An append reuses the head (size, chain hash, frontier) it last wrote when the log still ends there, and reads
it again when another writer moved it or its own write rolled back; proofs and checkpoints read in one
pipelined round trip; a pooled connection that the server closed is replaced, not handed out. A rejected
batch writes nothing and says why, whatever the order in which the append meets its faults.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from models import merkle
from models.database import fetch_all, reading, sequenced
from models.ledger import Ledger, _prepare_all, initialise
from models.verification import verify_ledger
from qerberos import verifier
from qerberos.errors import ConflictError, ValidationError
from qerberos.settings import Settings
from tests.conftest import POSTGRES_ADMIN_URL, make_settings
from tests.integration.ledger.helpers import event


@pytest.fixture
def other_writer(backend_settings: Settings, ledger: Ledger) -> Iterator[Ledger]:
    """A second ledger instance on the same database, as another API worker would hold."""
    other = Ledger.from_settings(backend_settings)
    yield other
    other.close()


def test_two_writers_taking_turns_build_the_same_tree_as_one(ledger: Ledger, other_writer: Ledger) -> None:
    sizes = [1, 3, 2, 7, 1, 16, 5]
    for turn, size in enumerate(sizes):
        writer = (ledger, other_writer)[turn % 2]
        writer.append([event(n) for n in range(size)])
    total = sum(sizes)

    assert verify_ledger(ledger).intact  # the chain, every leaf and every stored Merkle node re-derived
    leaves = [ledger.get_by_seq(seq).leaf_hash for seq in range(total)]
    _, frontier = merkle.append_batch(0, leaves, {})
    checkpoint = verifier.verify_checkpoint(ledger.checkpoint(force=True), ledger.verifier_keys(), ledger.origin)
    assert merkle.root_from_frontier(total, frontier) == checkpoint.root_hash
    for seq in (0, total // 2, total - 1):
        proof = other_writer.inclusion_proof(seq, total)
        verifier.verify_inclusion(seq, total, leaves[seq], proof.proof, checkpoint.root_hash)


def test_an_append_that_rolled_back_does_not_leave_its_head_behind(ledger: Ledger) -> None:
    ledger.append([event(0), event(1)])
    with pytest.raises(RuntimeError), sequenced(ledger.engine) as connection:
        ledger._append_in(connection, _prepare_all([event(2), event(3), event(4)]))
        raise RuntimeError("the transaction rolls back after the head moved in memory")

    appended = ledger.append([event(5)])

    assert [2] == [result.record.seq for result in appended]
    assert (True, 3) == (verify_ledger(ledger).intact, ledger.size())


def test_proofs_and_checkpoints_read_in_one_round_trip_give_the_same_answers(ledger: Ledger) -> None:
    ledger.append([event(n) for n in range(11)])
    note = ledger.checkpoint(force=True)

    proof = ledger.inclusion_proof(6)

    checkpoint = verifier.verify_checkpoint(note, ledger.verifier_keys(), ledger.origin)
    assert (note, 11) == (proof.checkpoint, proof.tree_size)
    verifier.verify_inclusion(6, 11, proof.leaf_hash, proof.proof, checkpoint.root_hash)
    assert proof.checkpoint is not None and ledger.inclusion_proof(6, 10).checkpoint is None
    assert [] == list(ledger.consistency_proof(11, 11).proof)
    assert note == ledger.checkpoint()  # the log has not grown: the latest checkpoint stands


def test_fetch_all_answers_each_query_in_order_in_and_out_of_a_transaction(ledger: Ledger) -> None:
    ledger.append([event(n) for n in range(3)])
    queries = [
        ("SELECT seq FROM ledger_entries WHERE seq < ? ORDER BY seq", (2,)),
        ("SELECT count(*) FROM checkpoints", ()),
    ]

    with reading(ledger.engine) as connection:
        outside = fetch_all(connection, queries)
    with sequenced(ledger.engine) as connection:
        inside = fetch_all(connection, queries)

    assert [[(0,), (1,)], [(0,)]] == outside == inside


def test_a_pooled_connection_the_server_closed_is_replaced(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with initialise(make_settings(monkeypatch, tmp_path / "home", postgres_url)) as ledger:
        ledger.append([event(0)])
        with ledger.engine.connect() as connection:  # the pool's one connection
            pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            deadline = time.monotonic() + 10
            while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
                assert time.monotonic() < deadline, "the backend did not end"
                time.sleep(0.05)

        ledger.append([event(1)])

        assert (2, 2) == (ledger.size(), ledger.consistency_proof(1, 2).second)


def test_a_rejected_batch_names_every_invalid_event_and_those_come_before_a_conflict(ledger: Ledger) -> None:
    known = ledger.append([event(0, event_id=uuid.UUID(int=7))])[0].record
    too_early = dataclasses.replace(event(3), occurred_at=dt.datetime(1960, 1, 1, tzinfo=dt.UTC))
    conflicting = event(0, event_id=known.id, verdict="DENY")

    with pytest.raises(ValidationError) as invalid:
        ledger.append([event(1), conflicting, too_early, event(4), too_early])
    with pytest.raises(ConflictError) as conflict:
        ledger.append([event(1), conflicting, event(4)])

    assert (["2", "4"], {"index": 1, "id": str(known.id), "fields": ["verdict"]}) == (
        list(invalid.value.details),
        conflict.value.details,
    )
    assert (1, True) == (ledger.size(), verify_ledger(ledger).intact)


def test_a_connection_lent_for_reading_writes_in_transactions_again(ledger: Ledger) -> None:
    with reading(ledger.engine) as connection:
        lent = connection.connection.dbapi_connection
        fetch_all(connection, [("SELECT 1", ())])
    with pytest.raises(RuntimeError), sequenced(ledger.engine) as connection:
        assert lent is connection.connection.dbapi_connection  # the pool's one connection, handed out again
        ledger._append_in(connection, _prepare_all([event(0)]))
        raise RuntimeError("rolls back")

    assert 0 == ledger.size()  # nothing of the rolled-back append was committed on its own
