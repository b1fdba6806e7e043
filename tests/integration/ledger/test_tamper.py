"""An attacker with database access (who drops the triggers first) is caught by ``qerberos verify``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from cli import app
from models.ledger import Ledger, initialise
from models.verification import verify_ledger
from qerberos.settings import Settings
from tests.integration.ledger.helpers import as_attacker, event


def _fill(ledger: Ledger) -> Ledger:
    ledger.append([event(n) for n in range(6)])
    ledger.checkpoint(force=True)
    ledger.append([event(n) for n in range(6, 10)])
    ledger.checkpoint(force=True)
    return ledger


@pytest.fixture
def filled(ledger: Ledger) -> Ledger:
    return _fill(ledger)


@pytest.fixture
def filled_sqlite(sqlite_settings: Settings) -> Iterator[Ledger]:
    with initialise(sqlite_settings) as ledger:
        yield _fill(ledger)


TAMPERING = {
    "changed column": (["UPDATE ledger_entries SET ref = 'file:other' WHERE seq = 4"], 4, "canonical"),
    "changed canonical and hashes of one row": (
        [
            "UPDATE ledger_entries SET verdict = 'DENY', "
            "canonical = replace(canonical, '\"ALLOW\"', '\"DENY\"') WHERE seq = 3"
        ],
        3,
        "leaf hash",
    ),
    "changed details": (
        ['UPDATE event_details SET details = \'{"n": 99, "ip": "10.0.0.7"}\' WHERE seq = 2'],
        2,
        "details",
    ),
    "deleted row": (["DELETE FROM ledger_entries WHERE seq = 5"], 5, "missing"),
    "reordered rows": (
        [
            "UPDATE ledger_entries SET seq = 100 WHERE seq = 1",
            "UPDATE ledger_entries SET seq = 1 WHERE seq = 2",
            "UPDATE ledger_entries SET seq = 2 WHERE seq = 100",
        ],
        1,
        "canonical",
    ),
    "truncated tail": (["DELETE FROM ledger_entries WHERE seq >= 8"], 8, "truncated"),
    "changed Merkle node": (
        [
            "UPDATE merkle_nodes SET hash = (SELECT leaf_hash FROM ledger_entries WHERE seq = 0) "
            "WHERE level = 2 AND idx = 0"
        ],
        0,
        "Merkle node",
    ),
    "forged checkpoint": (
        ["UPDATE checkpoints SET note = replace(note, 'test.qerberos.local', 'test.qerberos.locak') WHERE size = 6"],
        6,
        "checkpoint",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_verify_names_the_first_bad_sequence_number(filled: Ledger, case: str) -> None:
    statements, seq, words = TAMPERING[case]
    as_attacker(filled, *statements)
    report = verify_ledger(filled)
    assert (seq, True) == (report.first_bad_seq, words.lower() in (report.problem or "").lower()), report


SQLITE_TYPE_TAMPERING = {
    "hash turned into text that is not UTF-8": (
        ["UPDATE ledger_entries SET leaf_hash = leaf_hash || leaf_hash WHERE seq = 4"],
        4,
        "cannot be read",
    ),
    "canonical turned into a blob": (["UPDATE ledger_entries SET canonical = x'00ff' WHERE seq = 3"], 3, "type"),
    "details turned into a blob": (["UPDATE event_details SET details = x'00ff' WHERE seq = 2"], 2, "type"),
    "unreadable row after a changed one": (
        [
            "UPDATE ledger_entries SET ref = 'file:other' WHERE seq = 1",
            "UPDATE ledger_entries SET leaf_hash = leaf_hash || leaf_hash WHERE seq = 4",
        ],
        1,
        "canonical",
    ),
}


@pytest.mark.parametrize("case", list(SQLITE_TYPE_TAMPERING))
def test_verify_reports_values_of_another_type_that_sqlite_keeps(filled_sqlite: Ledger, case: str) -> None:
    statements, seq, words = SQLITE_TYPE_TAMPERING[case]  # PostgreSQL refuses such values
    as_attacker(filled_sqlite, *statements)
    report = verify_ledger(filled_sqlite)
    assert (seq, True) == (report.first_bad_seq, words.lower() in (report.problem or "").lower()), report


def test_verify_of_a_live_ledger_leaves_out_what_is_appended_while_it_runs(
    filled: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = filled.size

    def size_then_more_events_and_a_checkpoint() -> int:
        before = size()
        filled.append([event(n) for n in range(10, 14)])
        filled.checkpoint(force=True)
        return before

    monkeypatch.setattr(filled, "size", size_then_more_events_and_a_checkpoint)
    report = verify_ledger(filled)
    assert (True, 10) == (report.intact, report.size), report


def test_cli_verify_exit_codes(filled: Ledger, backend_settings: object) -> None:
    runner = CliRunner()
    intact = runner.invoke(app, ["verify"])
    assert (intact.exit_code, "intact" in intact.output) == (0, True), intact.output
    as_attacker(filled, "DELETE FROM ledger_entries WHERE seq = 5")
    tampered = runner.invoke(app, ["verify"])
    assert (tampered.exit_code, "sequence number 5" in tampered.output) == (1, True), tampered.output
