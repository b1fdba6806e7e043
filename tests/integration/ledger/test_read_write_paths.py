"""The ledger's fast paths on SQLite and PostgreSQL: entries streamed to the database as they are hashed, and
records read back as driver rows. Each must give exactly what the plain paths gave."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest

from models.ledger import Ledger
from models.records import LedgerRecord, SearchQuery
from models.verification import verify_ledger
from qerberos.errors import ConflictError
from tests.integration.ledger.helpers import event

_ACTORS = ("did:squid:alice", "did:squid:bob", "did:squid:carol")
_START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _appended(ledger: Ledger, count: int) -> list[LedgerRecord]:
    """``count`` events over three actors and all verdicts; every fifth has no details, every fourth a CID."""
    events = []
    for n in range(count):
        plain = event(n, actor=_ACTORS[n % 3], verdict=("ALLOW", "DENY", "WARN")[n % 4 % 3])
        events.append(
            dataclasses.replace(plain, details=None if n % 5 == 0 else plain.details, cid=f"bafy{n}" if n % 4 else None)
        )
    return [result.record for result in ledger.append(events)]


def test_a_conflict_after_streamed_entries_writes_nothing_and_the_chain_continues(ledger: Ledger) -> None:
    event_id = uuid.uuid4()
    ledger.append([event(0, event_id=event_id)])
    with pytest.raises(ConflictError):
        ledger.append([*(event(n) for n in range(1, 6)), event(9, event_id=event_id)])
    assert 1 == ledger.size()
    assert [1, 2] == [result.record.seq for result in ledger.append([event(1), event(2)])]
    assert verify_ledger(ledger).intact


def test_records_read_back_equal_the_records_appended(ledger: Ledger) -> None:
    appended = _appended(ledger, 12)
    assert appended == [ledger.get(record.id) for record in appended]
    assert appended == [ledger.get_by_seq(record.seq) for record in appended]
    assert appended[::-1] == list(ledger.search(SearchQuery(limit=100)).records)


@pytest.mark.parametrize(
    "query",
    [
        SearchQuery(actor="did:squid:bob"),
        SearchQuery(actor="did:squid:bob", limit=2, offset=1),
        SearchQuery(actor="did:squid:alice", verdict="DENY"),
        SearchQuery(type="access", layer="qdrive", limit=3),
        SearchQuery(start=_START + dt.timedelta(minutes=4), end=_START + dt.timedelta(minutes=9)),
        SearchQuery(actor="did:squid:carol", start=_START + dt.timedelta(minutes=5), limit=1),
        SearchQuery(actor="did:squid:nobody"),
    ],
    ids=repr,
)
def test_search_agrees_with_filtering_every_record(ledger: Ledger, query: SearchQuery) -> None:
    appended = _appended(ledger, 20)
    matching = [
        record
        for record in reversed(appended)
        if query.actor in (None, record.actor.squid_id)
        and query.verdict in (None, record.verdict)
        and query.type in (None, record.type)
        and query.layer in (None, record.layer)
        and (query.start is None or record.occurred_at >= query.start)
        and (query.end is None or record.occurred_at <= query.end)
    ]
    page = ledger.search(query)
    expected_page = matching[query.offset : query.offset + query.limit]
    assert (len(matching), expected_page) == (page.total_count, list(page.records))
    assert (query.offset + query.limit < len(matching)) == page.has_more


def test_search_after_erasure_gives_no_details_and_keeps_the_commitments(ledger: Ledger) -> None:
    appended = [record for record in _appended(ledger, 9) if record.actor.squid_id == "did:squid:bob"]
    ledger.erase("did:squid:bob", requested_by="test")
    page = ledger.search(SearchQuery(actor="did:squid:bob", type="access"))
    assert [(record.seq, None, record.details_commitment) for record in reversed(appended)] == [
        (record.seq, record.details, record.details_commitment) for record in page.records
    ]
