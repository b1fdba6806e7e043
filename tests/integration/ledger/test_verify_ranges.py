"""``verify_ledger`` checks aligned ranges column-wise in worker processes and still reports, for any
tampering, what one sequential row-by-row pass reports."""

from __future__ import annotations

import os

import pytest

from models import verification
from models.ledger import Ledger
from models.ledger_columns import ColumnReader
from models.range_check import range_intact
from models.signed_note import verify_checkpoint
from models.verification import verify_ledger
from tests.integration.ledger.helpers import as_attacker, event

CHUNK = 8


@pytest.fixture
def long_ledger(ledger: Ledger) -> Ledger:
    """37 entries (four full ranges of 8 and a partial one) with checkpoints inside ranges and at their
    boundaries; some details need JSON escapes."""
    for first, last in ((0, 5), (5, 16), (16, 29), (29, 37)):
        details = {"note": 'say "hi"\\\n'} if first == 5 else None
        ledger.append([event(n, details=details) for n in range(first, last)])
        ledger.checkpoint(force=True)
    return ledger


def test_a_long_ledger_verifies_in_ranges_by_two_workers(long_ledger: Ledger) -> None:
    seen: list[int] = []
    report = verify_ledger(long_ledger, chunk_size=CHUNK, workers=2, progress=lambda done, _size: seen.append(done))
    assert (True, 37, 4, [8, 16, 24, 32, 37]) == (report.intact, report.size, report.checkpoints_checked, seen)


def test_the_fast_path_passes_every_range_of_an_intact_ledger(long_ledger: Ledger) -> None:
    roots = [
        verify_checkpoint(note, long_ledger.verifier_keys(), long_ledger.origin) for note in long_ledger.checkpoints()
    ]
    with ColumnReader.open(long_ledger.engine.url) as reader:
        passed = [
            range_intact(
                reader,
                start,
                min(start + CHUNK, 37),
                [(c.size, c.root_hash) for c in roots if start < c.size <= start + CHUNK],
                {},
            )
            for start in range(0, 37, CHUNK)
        ]
    assert [True] * 5 == passed


def test_rows_that_need_json_escapes_take_the_fast_path(ledger: Ledger) -> None:
    ledger.append(
        [
            event(n, actor=name)
            for n, name in enumerate(
                ['did:squid:"quoted"', "did:squid:back\\slash", "did:squid:tab\t", "did:squid:zoë"]
            )
        ]
    )
    with ColumnReader.open(ledger.engine.url) as reader:
        assert range_intact(reader, 0, 4, [], {})


def test_details_erased_by_a_recorded_erasure_take_the_fast_path(ledger: Ledger) -> None:
    ledger.append([event(n, actor="did:squid:bob" if n % 2 else "did:squid:alice") for n in range(6)])
    ledger.erase("did:squid:bob", requested_by="test")
    with ColumnReader.open(ledger.engine.url) as reader:
        passed = (range_intact(reader, 0, 7, [], {"did:squid:bob": 6}), range_intact(reader, 0, 7, [], {}))
    assert ((True, False), True) == (passed, verify_ledger(ledger, chunk_size=CHUNK, workers=1).intact)


TAMPERING = {
    "changed column in the third range": (
        ["UPDATE ledger_entries SET ref = 'file:other' WHERE seq = 19"],
        19,
        "canonical",
    ),
    "first of two changes wins": (
        [
            "UPDATE ledger_entries SET ref = 'file:other' WHERE seq = 33",
            "UPDATE event_details SET details = '{\"n\": 99}' WHERE seq = 12",
        ],
        12,
        "details",
    ),
    "deleted first row of a range": (["DELETE FROM ledger_entries WHERE seq = 16"], 16, "missing"),
    "deleted details row, erased by nothing": (["DELETE FROM event_details WHERE seq = 26"], 26, "no recorded erasure"),
    "changed node above the ranges": (
        [
            "UPDATE merkle_nodes SET hash = (SELECT leaf_hash FROM ledger_entries WHERE seq = 0)"
            " WHERE level = 4 AND idx = 0"
        ],
        0,
        "Merkle node",
    ),
    "deleted node of the frontier": (["DELETE FROM merkle_nodes WHERE level = 3 AND idx = 2"], 16, "Merkle node"),
    "changed chain at a range boundary": (
        ["UPDATE ledger_entries SET chain_hash = leaf_hash WHERE seq = 23"],
        23,
        "chain",
    ),
    # the fast path compares hash columns end to end: a value of another length (a 16-byte salt) must not
    # shift the values after it into place
    "leaf hash of another length": (
        ["UPDATE ledger_entries SET leaf_hash = (SELECT salt FROM event_details WHERE seq = 10) WHERE seq = 10"],
        10,
        "leaf hash",
    ),
    "Merkle node of another length": (
        ["UPDATE merkle_nodes SET hash = (SELECT salt FROM event_details WHERE seq = 10) WHERE level = 1 AND idx = 5"],
        10,
        "Merkle node",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_two_workers_name_what_one_sequential_pass_names(long_ledger: Ledger, case: str) -> None:
    statements, seq, words = TAMPERING[case]
    as_attacker(long_ledger, *statements)
    in_ranges = verify_ledger(long_ledger, chunk_size=CHUNK, workers=2)
    sequential = verify_ledger(long_ledger, chunk_size=64, workers=1)
    assert (seq, True) == (in_ranges.first_bad_seq, words.lower() in (in_ranges.problem or "").lower()), in_ranges
    assert (sequential.first_bad_seq, sequential.problem) == (in_ranges.first_bad_seq, in_ranges.problem)


def _die(_item: object) -> bool:
    os._exit(1)


def test_ranges_whose_worker_died_are_checked_in_this_process(
    long_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked_here: list[int] = []
    verify_range = verification._verify_range
    monkeypatch.setattr(verification, "_check_in_worker", _die)
    monkeypatch.setattr(
        verification,
        "_verify_range",
        lambda connection, item, erasures: (checked_here.append(item.start), verify_range(connection, item, erasures)),
    )
    report = verify_ledger(long_ledger, chunk_size=CHUNK, workers=2)
    assert (True, [0, 8, 16, 24, 32]) == (report.intact, checked_here)


def test_a_chunk_size_that_is_not_a_power_of_two_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="power of two"):
        verify_ledger(ledger, chunk_size=20_000)
