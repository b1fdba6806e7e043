"""A search's total is exact while the ledger grows: each filter's count is remembered and topped up with
the entries appended since (``models.match_counts``), including entries another process appended."""

from __future__ import annotations

from models.ledger import Ledger
from models.records import SearchQuery
from qerberos.settings import Settings
from tests.integration.ledger.helpers import event

_QUERIES = (
    SearchQuery(actor="did:squid:bob"),
    SearchQuery(verdict="DENY"),
    SearchQuery(layer="qdrive", limit=1),
    SearchQuery(),
)


def _append(ledger: Ledger, start: int, count: int) -> None:
    """Events ``start`` to ``start + count - 1``: odd ones by bob, every third from the second a DENY."""
    actors = ("did:squid:alice", "did:squid:bob")
    verdicts = ("ALLOW", "DENY", "WARN")
    ledger.append([event(n, actor=actors[n % 2], verdict=verdicts[n % 3]) for n in range(start, start + count)])


def _totals(ledger: Ledger) -> list[int]:
    return [ledger.search(query).total_count for query in _QUERIES]


def test_totals_stay_exact_as_this_and_another_writer_append(ledger: Ledger, backend_settings: Settings) -> None:
    _append(ledger, 0, 7)
    with Ledger.from_settings(backend_settings) as other_writer:
        for start, count, writer in ((7, 5, ledger), (12, 9, other_writer), (21, 1, ledger)):
            _totals(ledger)
            _append(writer, start, count)
        counted_afresh = _totals(other_writer)  # it never searched: it counts every entry
    assert [11, 7, 22, 22] == _totals(ledger) == counted_afresh


def test_an_erasure_changes_no_total_but_adds_its_own_event(ledger: Ledger) -> None:
    _append(ledger, 0, 6)
    before = _totals(ledger)
    ledger.erase("did:squid:bob", requested_by="test")  # bob's details go, his entries stay
    assert [before[0] + 1, before[1], before[2], before[3] + 1] == _totals(ledger)  # the erasure event is bob's
