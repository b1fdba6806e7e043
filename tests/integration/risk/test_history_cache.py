"""The history cache answers what a full read of the ledger answers (SQLite and PostgreSQL): as the ledger
grows, past the row limit, with qerberos's own rows and future-dated rows among the identity's, after an
erasure, and when primed from one pass over the ledger."""

from __future__ import annotations

import datetime as dt

from analytics.risk.factors import HistoryEvent
from analytics.taxonomy import default_taxonomy
from models.ledger import Ledger
from models.reader import LedgerReader, ReadSession
from models.records import Actor, NewEvent
from pipelines.risk.history_cache import HistoryCache

T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
ALICE, BOB = "did:squid:alice", "did:squid:bob"
LIMIT = 6


def _event(identity: str, minute: int, *, layer: str = "squid", verdict: str = "ALLOW", country: str = "DE",
           type_: str = "login") -> NewEvent:  # fmt: skip
    return NewEvent(
        type=type_, ref=f"identity:{identity}", actor=Actor(identity), layer=layer, verdict=verdict,  # type: ignore[arg-type]
        source="test", details={"ip": f"10.0.0.{minute % 3}", "country": country, "device": "web"},
        occurred_at=T0 + dt.timedelta(minutes=minute),
    )  # fmt: skip


def _histories(session: ReadSession, cache: HistoryCache, identity: str) -> tuple[tuple[HistoryEvent, ...], ...]:
    """(cached, full read) at the ledger's current state."""
    snapshot = session.snapshot(rounding_ms=60_000, future_skew_ms=300_000)
    full = HistoryCache(limit=LIMIT, max_rows=0, taxonomy=default_taxonomy()).history(session, identity, snapshot)
    return cache.history(session, identity, snapshot), full


def test_the_cached_history_is_a_full_read_as_the_ledger_grows(ledger: Ledger) -> None:
    cache = HistoryCache(limit=LIMIT, max_rows=1000, taxonomy=default_taxonomy())
    steps = [
        [_event(ALICE, 0), _event(BOB, 1), _event(ALICE, 2, verdict="DENY")],
        [],  # nothing new
        [_event(ALICE, 3, layer="qerberos", type_="security.alert.updated"), _event(BOB, 4)],
        [_event(ALICE, 5 + n, country="FR") for n in range(LIMIT - 2)],  # the own row takes a place: 0 drops
        [_event(ALICE, 9 + n) for n in range(LIMIT + 2)],  # more than the limit at once
        [_event(ALICE, 60 * 24 * 365 * 4)],  # dated years after its receipt: after "now", not history
        [_event(BOB, 30), _event(ALICE, 20, verdict="DENY", type_="download")],
    ]
    sizes = []
    for step in steps:
        if step:
            ledger.append(step)
        with LedgerReader(ledger.engine).session() as session:
            cached, full = _histories(session, cache, ALICE)
        assert full == cached
        sizes.append(len(cached))
    assert [2, 2, 2, LIMIT - 1, LIMIT, LIMIT - 1, LIMIT - 1] == sizes


def test_an_erasure_leaves_no_access_details_in_the_cached_history(ledger: Ledger) -> None:
    ledger.append([_event(ALICE, n) for n in range(3)])
    cache = HistoryCache(limit=LIMIT, max_rows=1000, taxonomy=default_taxonomy())
    with LedgerReader(ledger.engine).session() as session:
        before, _ = _histories(session, cache, ALICE)
    ledger.erase(ALICE, requested_by="test")
    with LedgerReader(ledger.engine).session() as session:
        after, full = _histories(session, cache, ALICE)
    assert {"DE"} == {event.country for event in before}
    assert full == after
    assert [(None, None, None)] * 3 == [(event.ip, event.country, event.device) for event in after]


def test_priming_holds_what_full_reads_would_within_the_row_bound(ledger: Ledger) -> None:
    ledger.append([_event(ALICE if n % 3 else BOB, n) for n in range(12)])
    cache = HistoryCache(limit=LIMIT, max_rows=1000, taxonomy=default_taxonomy())
    with LedgerReader(ledger.engine).session() as session:
        snapshot = session.snapshot(rounding_ms=60_000, future_skew_ms=300_000)
        assert 2 == cache.prime(session, snapshot)
        assert LIMIT + 4 == cache.rows_held  # Alice's newest 6 of 8, Bob's 4
        for identity in (ALICE, BOB):
            cached, full = _histories(session, cache, identity)
            assert full == cached
        small = HistoryCache(limit=LIMIT, max_rows=11, taxonomy=default_taxonomy())
        assert 0 == small.prime(session, snapshot)  # 12 rows do not fit


def test_the_least_recently_used_identities_leave_first(ledger: Ledger) -> None:
    ledger.append([_event(ALICE, n) for n in range(4)] + [_event(BOB, 10 + n) for n in range(3)])
    cache = HistoryCache(limit=LIMIT, max_rows=5, taxonomy=default_taxonomy())
    with LedgerReader(ledger.engine).session() as session:
        _histories(session, cache, ALICE)
        assert 4 == cache.rows_held
        _histories(session, cache, BOB)  # 7 rows do not fit: Alice's leave
        assert 3 == cache.rows_held
