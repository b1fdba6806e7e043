"""The four attacks of issue 20, scripted with direct SQL as someone with the database's owner rights would,
on SQLite and PostgreSQL: each is refused, or caught and named.

1. deleting one details row; 2. deleting every signed checkpoint; 3. truncating the tail together with the
checkpoints past it; 4. rewriting the tail consistently with qerberos's own append code, without the key.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from cli import app
from models.ledger import Ledger, checkpoint_size, initialise
from models.signer_state import CheckpointRefusedError
from models.signing import LogSigner
from models.verification import verify_ledger
from qerberos.settings import Settings
from tests.conftest import make_settings
from tests.integration.ledger.helpers import as_attacker, event

SIZE = 200


@pytest.fixture
def log(backend_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    """200 events in signed checkpoints of 50; a checkpoint is due as soon as the log grows (interval 0)."""
    monkeypatch.setenv("QERBEROS_CHECKPOINT_INTERVAL", "0")
    settings = make_settings(monkeypatch, backend_settings.home, backend_settings.database_url)
    with initialise(settings) as ledger:
        for start in range(0, SIZE, 50):
            ledger.append([event(n, actor=f"did:squid:user{n % 7}") for n in range(start, start + 50)])
            ledger.checkpoint()
        yield ledger


def test_deleting_a_details_row_is_refused_by_the_database(log: Ledger) -> None:
    with pytest.raises(DBAPIError, match="recorded erasure"), log.engine.begin() as connection:
        connection.execute(text("DELETE FROM event_details WHERE seq = 120"))
    assert verify_ledger(log).intact


def test_a_details_row_deleted_behind_the_guards_is_named_by_verify(log: Ledger) -> None:
    as_attacker(log, "DELETE FROM event_details WHERE seq = 120")
    report = verify_ledger(log)
    assert (120, True) == (report.first_bad_seq, "no recorded erasure" in (report.problem or "")), report


def test_erasure_deletes_details_the_database_refuses_to_delete_otherwise(log: Ledger) -> None:
    erased = log.erase("did:squid:user1", requested_by="test")
    log.checkpoint()
    with pytest.raises(DBAPIError, match="recorded erasure"), log.engine.begin() as connection:
        connection.execute(text("DELETE FROM event_details WHERE seq = 121"))  # user2: no erasure covers it
    assert (29, True) == (erased, verify_ledger(log).intact)


def test_deleting_every_checkpoint_is_named_by_verify(log: Ledger) -> None:
    as_attacker(log, "DELETE FROM checkpoints")
    report = verify_ledger(log)
    assert (0, True) == (report.first_bad_seq, "in no signed checkpoint" in (report.problem or "")), report


def _cut_tail_at(seq: int) -> list[str]:
    """Statements that remove every entry from ``seq`` on, with their details, nodes and checkpoints."""
    nodes = [f"DELETE FROM merkle_nodes WHERE level = {level} AND idx >= {seq >> level}" for level in range(1, 9)]
    return [
        f"DELETE FROM ledger_entries WHERE seq >= {seq}",
        f"DELETE FROM event_details WHERE seq >= {seq}",
        *nodes,
        f"DELETE FROM checkpoints WHERE size > {seq}",
    ]


def test_a_truncated_tail_is_named_by_verify_and_never_signed(log: Ledger) -> None:
    as_attacker(log, *_cut_tail_at(190))
    report = verify_ledger(log)
    assert (190, True) == (report.first_bad_seq, "truncated" in (report.problem or "")), report
    with pytest.raises(CheckpointRefusedError, match="size 200"):
        log.checkpoint(force=True)


def test_a_tail_rewritten_by_our_own_append_code_is_never_signed_and_named_by_verify(log: Ledger) -> None:
    as_attacker(log, *_cut_tail_at(150))
    keyless = Ledger(log.engine, LogSigner(log.origin, [], []))  # qerberos's append code, without the key
    keyless.append([event(n, actor="did:squid:mallory") for n in range(150, SIZE)])
    with pytest.raises(CheckpointRefusedError, match="not consistent with the checkpoint of size 200"):
        log.checkpoint(force=True)
    report = verify_ledger(log)
    assert (200, True) == (report.first_bad_seq, "does not match" in (report.problem or "")), report
    assert [50, 100, 150] == [checkpoint_size(note) for note in log.checkpoints()]


def _as_host_attacker(log: Ledger, home: Path, *statements: str) -> None:
    """Someone who holds the database and the host but not the key: the signer's memory and the checkpoint
    history go too, so nothing of ours remembers what was signed; only what the auditor kept does."""
    as_attacker(log, *statements)
    shutil.rmtree(home / "checkpoints")
    (home / "keys" / "signed-checkpoint").unlink()


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def saved(log: Ledger, tmp_path: Path) -> Path:
    """The checkpoint of 200 an auditor saved."""
    path = tmp_path / "auditor" / "checkpoint-200"
    path.parent.mkdir()
    path.write_text(log.checkpoints()[-1], encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("cut", "rewrite", "expected"),
    [(190, False, "truncated: a trusted checkpoint covers 200 entries"), (150, True, "size 200")],
    ids=["truncated tail", "rewritten tail"],
)
def test_a_trusted_checkpoint_names_what_a_host_attacker_did(
    log: Ledger, backend_settings: Settings, saved: Path, tmp_path: Path, cut: int, rewrite: bool, expected: str
) -> None:
    _as_host_attacker(log, backend_settings.home, *_cut_tail_at(cut))
    if rewrite:
        Ledger(log.engine, LogSigner(log.origin, [], [])).append(
            [event(n, actor="did:squid:m") for n in range(cut, SIZE)]
        )
    log.checkpoint(force=True)  # nothing remembers: the rewritten log is signed
    assert 0 == _cli("verify")[0]
    code, output = _cli("verify", "--trusted-checkpoint", str(saved))
    assert (1, True) == (code, expected in output), output

    bundle = tmp_path / "bundle"
    assert 0 == _cli("export", str(bundle))[0]
    assert 0 == _cli("verify", "--bundle", str(bundle))[0]
    code, output = _cli("verify", "--bundle", str(bundle), "--trusted-checkpoint", str(saved))
    wanted = "covers 200 records" if not rewrite else "of size 200 has a different root: a fork"
    assert (1, True) == (code, wanted in output), output


def test_a_database_attacker_cannot_export_a_truncated_log(log: Ledger, tmp_path: Path) -> None:
    as_attacker(log, *_cut_tail_at(190))
    code, output = _cli("export", str(tmp_path / "bundle"))
    assert (2, True) == (code, "refusing to sign the tree of size 190" in output), output


def test_a_bundle_cut_short_is_named_by_the_history_it_carries(log: Ledger, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    assert (0, 0) == (_cli("export", str(bundle))[0], _cli("verify", "--bundle", str(bundle))[0])
    records = (bundle / "records.jsonl").read_text().splitlines(keepends=True)
    (bundle / "records.jsonl").write_text("".join(records[:190]))
    stored = (bundle / "checkpoints.jsonl").read_text().splitlines(keepends=True)
    (bundle / "checkpoints.jsonl").write_text("".join(line for line in stored if json.loads(line)["size"] <= 150))
    code, output = _cli("verify", "--bundle", str(bundle))
    assert (1, "TAMPERED: truncated: a signed checkpoint covers 200 records, the bundle holds 190\n") == (code, output)
