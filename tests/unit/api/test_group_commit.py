"""The group-commit queue's semantics against a stand-in ledger (no database): ordering, one append for many
concurrent requests, conflict and validation isolation, error propagation, flushing on close."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from api.ingest_queue import IngestQueue, RefusedAloneError, WriterGate
from models.records import Actor, NewEvent
from qerberos.errors import ConflictError, DependencyUnavailableError, LedgerError, ValidationError


def _event(ref: str) -> NewEvent:
    return NewEvent(type="access", ref=ref, actor=Actor("did:squid:u"), layer="qdrive", verdict="ALLOW", source="t")


class FakeLedger:
    """Appends all or nothing, like ``Ledger.append``; answers ``(seq, ref)`` for each event.

    Refs starting with ``conflict`` raise ``ConflictError`` naming their index, ``invalid`` a
    ``ValidationError`` keyed by index, ``anonymous`` a ``ConflictError`` naming no item, ``poison`` the
    driver's ``IntegrityError`` (the database refused that row) and ``locked`` the driver's
    ``OperationalError`` (the database failed as a whole); ``fail_next`` makes the next append raise
    ``LedgerError`` (the database is down)."""

    def __init__(self, commit_delay: float = 0.0) -> None:
        self.refs: list[str] = []
        self.calls: list[list[str]] = []
        self.fail_next = False
        self.commit_delay = commit_delay
        self._lock = threading.Lock()

    def append(self, events: Sequence[NewEvent]) -> list[Any]:
        with self._lock:
            refs = [event.ref for event in events]
            self.calls.append(refs)
            if self.commit_delay:
                threading.Event().wait(self.commit_delay)
            if self.fail_next:
                self.fail_next = False
                raise LedgerError("ledger write failed: OperationalError")
            for index, ref in enumerate(refs):
                if ref.startswith("conflict"):
                    raise ConflictError("id reused", details={"index": index, "fields": ["ref"]})
                if ref.startswith("anonymous"):
                    raise ConflictError("id reused somewhere")
                if ref.startswith("poison"):
                    raise sqlite3.IntegrityError("CHECK constraint failed")
                if ref.startswith("locked"):
                    raise sqlite3.OperationalError("database is locked")
            invalid = {str(index): {"timestamp": "out of range"} for index, ref in enumerate(refs) if "invalid" in ref}
            if invalid:
                raise ValidationError(f"{len(invalid)} events are invalid", details=invalid)
            start = len(self.refs)
            self.refs.extend(refs)
            return [(start + offset, ref) for offset, ref in enumerate(refs)]


async def _submit_all(queue: IngestQueue, refs: list[str]) -> list[Any]:
    return await asyncio.gather(*(queue.submit(_event(ref)) for ref in refs), return_exceptions=True)


def test_concurrent_requests_share_one_append_in_arrival_order() -> None:
    ledger = FakeLedger()
    queue = IngestQueue(ledger.append, linger=0.001)
    refs = [f"e{n}" for n in range(50)]

    results = asyncio.run(_submit_all(queue, refs))

    assert [(seq, ref) for seq, ref in enumerate(refs)] == results
    assert [refs] == ledger.calls
    assert 1 == queue.stats.groups


def test_requests_arriving_during_a_commit_form_the_next_group() -> None:
    ledger = FakeLedger(commit_delay=0.02)
    queue = IngestQueue(ledger.append, linger=0.0)

    async def scenario() -> list[Any]:
        first = asyncio.ensure_future(queue.submit(_event("first")))
        await asyncio.sleep(0.005)  # the first group is committing now
        rest = await _submit_all(queue, [f"e{n}" for n in range(20)])
        return [await first, *rest]

    results = asyncio.run(scenario())

    assert list(range(21)) == [seq for seq, _ in results]
    assert [["first"], [f"e{n}" for n in range(20)]] == ledger.calls


def test_max_group_bounds_each_append() -> None:
    ledger = FakeLedger()
    queue = IngestQueue(ledger.append, max_group=8, linger=0.001)

    results = asyncio.run(_submit_all(queue, [f"e{n}" for n in range(20)]))

    assert list(range(20)) == [seq for seq, _ in results]
    assert [8, 8, 4] == [len(call) for call in ledger.calls]


def test_a_conflict_fails_only_its_own_request() -> None:
    ledger = FakeLedger()
    queue = IngestQueue(ledger.append)
    refs = ["a", "b", "conflict-c", "d"]

    results = asyncio.run(_submit_all(queue, refs))

    assert isinstance(results[2], ConflictError)
    assert 0 == results[2].details["index"]  # the caller's own position, not its place in the group
    assert [(0, "a"), (1, "b"), (2, "d")] == [results[0], results[1], results[3]]
    assert ["a", "b", "d"] == ledger.refs
    assert [refs, ["a", "b", "d"]] == ledger.calls


def test_invalid_items_named_by_index_fail_alone() -> None:
    ledger = FakeLedger()
    queue = IngestQueue(ledger.append)

    results = asyncio.run(_submit_all(queue, ["a", "invalid-1", "b", "invalid-2"]))

    assert isinstance(results[1], ValidationError)
    assert isinstance(results[3], ValidationError)
    assert {"0": {"timestamp": "out of range"}} == results[1].details
    assert [(0, "a"), (1, "b")] == [results[0], results[2]]


def test_an_error_that_names_no_item_makes_each_item_commit_alone() -> None:
    ledger = FakeLedger()
    queue = IngestQueue(ledger.append)

    results = asyncio.run(_submit_all(queue, ["a", "anonymous", "b"]))

    assert isinstance(results[1], ConflictError)
    assert [(0, "a"), (1, "b")] == [results[0], results[2]]
    assert [["a", "anonymous", "b"], ["a"], ["anonymous"], ["b"]] == ledger.calls


def test_a_row_the_database_refuses_fails_only_its_own_request() -> None:
    ledger = FakeLedger()
    queue = IngestQueue(ledger.append)

    results = asyncio.run(_submit_all(queue, ["a", "poison", "b", "c"]))

    assert isinstance(results[1], RefusedAloneError)
    assert isinstance(results[1].__cause__, sqlite3.IntegrityError)
    assert [(0, "a"), (1, "b"), (2, "c")] == [results[0], results[2], results[3]]
    assert [["a", "poison", "b", "c"], ["a"], ["poison"], ["b"], ["c"]] == ledger.calls


def test_a_database_that_fails_as_a_whole_fails_the_group_without_trying_each_event() -> None:
    ledger = FakeLedger()
    queue = IngestQueue(ledger.append)

    results = asyncio.run(_submit_all(queue, ["a", "locked", "b"]))

    assert [DependencyUnavailableError] * 3 == [type(result) for result in results]
    assert [["a", "locked", "b"]] == ledger.calls
    assert [] == ledger.refs


def test_a_database_found_down_while_each_event_commits_alone_fails_the_rest() -> None:
    ledger = FakeLedger()
    queue = IngestQueue(ledger.append)

    results = asyncio.run(_submit_all(queue, ["a", "anonymous", "locked", "b"]))

    assert (0, "a") == results[0]
    assert isinstance(results[1], ConflictError)
    assert [DependencyUnavailableError] * 2 == [type(result) for result in results[2:]]
    assert [["a", "anonymous", "locked", "b"], ["a"], ["anonymous"], ["locked"]] == ledger.calls


def test_a_database_error_fails_every_request_of_the_group_and_loses_nothing_silently() -> None:
    ledger = FakeLedger()
    ledger.fail_next = True
    queue = IngestQueue(ledger.append)

    results = asyncio.run(_submit_all(queue, ["a", "b", "c"]))

    assert [DependencyUnavailableError] * 3 == [type(result) for result in results]
    assert [] == ledger.refs
    assert isinstance(results[0].__cause__, LedgerError)


def test_the_next_group_after_a_database_error_commits() -> None:
    ledger = FakeLedger()
    queue = IngestQueue(ledger.append)

    async def scenario() -> tuple[list[Any], list[Any]]:
        ledger.fail_next = True
        failed = await _submit_all(queue, ["a", "b"])
        return failed, await _submit_all(queue, ["c", "d"])

    failed, succeeded = asyncio.run(scenario())

    assert [DependencyUnavailableError] * 2 == [type(result) for result in failed]
    assert [(0, "c"), (1, "d")] == succeeded


def test_close_commits_everything_queued_then_refuses_new_events() -> None:
    ledger = FakeLedger(commit_delay=0.01)
    queue = IngestQueue(ledger.append, max_group=4)

    async def scenario() -> tuple[list[Any], BaseException | None]:
        pending = [asyncio.ensure_future(queue.submit(_event(f"e{n}"))) for n in range(10)]
        await asyncio.sleep(0)  # every request is queued
        await queue.close()
        assert all(future.done() for future in pending)
        try:
            await queue.submit(_event("late"))
        except DependencyUnavailableError as exc:
            return [future.result() for future in pending], exc
        return [future.result() for future in pending], None

    results, refused = asyncio.run(scenario())

    assert list(range(10)) == [seq for seq, _ in results]
    assert isinstance(refused, DependencyUnavailableError)
    assert [f"e{n}" for n in range(10)] == ledger.refs


def test_a_client_that_goes_away_does_not_cancel_the_commit_of_its_group() -> None:
    ledger = FakeLedger(commit_delay=0.02)
    queue = IngestQueue(ledger.append)

    async def scenario() -> Any:
        leaving = asyncio.ensure_future(queue.submit(_event("leaving")))
        staying = asyncio.ensure_future(queue.submit(_event("staying")))
        await asyncio.sleep(0.005)
        leaving.cancel()
        return await staying

    assert (1, "staying") == asyncio.run(scenario())
    assert ["leaving", "staying"] == ledger.refs


def test_max_group_must_be_positive() -> None:
    with pytest.raises(ValueError):
        IngestQueue(FakeLedger().append, max_group=0)


def test_writer_gate_serialises_holders(tmp_path: Any) -> None:
    gate = WriterGate(tmp_path / "writer.lock")
    inside = 0
    most = 0
    guard = threading.Lock()

    def hold() -> None:
        nonlocal inside, most
        for _ in range(20):
            with gate.held():
                with guard:
                    inside += 1
                    most = max(most, inside)
                threading.Event().wait(0.0005)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert 1 == most
