"""`qerberos backup` while ingestion runs, and `qerberos restore` that verifies before it replaces anything.

Every test runs on SQLite and on PostgreSQL (the `backend_settings` fixture) unless its name says SQLite.
A backup copies each store once and no token, whatever the MLflow store's folder holds, and a failed one
leaves nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from mlflow.tracking import MlflowClient

from models import keys
from models.database import create_ledger_engine
from models.identities import create_identity_tables, ensure_admin_token_file
from models.ledger import Ledger, initialise
from models.signing import LogSigner
from pipelines.backup import file_digest, manifest_note, read_manifest
from qerberos.settings import Settings, get_settings
from tests.conftest import make_settings
from tests.integration.ledger.helpers import as_attacker
from tests.integration.ops.conftest import PASSPHRASE, Ingestion, append, run


def _size(settings: Settings) -> int:
    with Ledger.from_settings(settings) as ledger:
        return ledger.size()


def _manifest(directory: Path) -> dict[str, object]:
    return json.loads((directory / "manifest.json").read_text())


def test_backup_during_ingestion_restores_into_a_fresh_home_that_verifies_and_keeps_appending(
    live: Settings, fresh_target: Callable[[], Settings], tmp_path: Path
) -> None:
    append(live, 40)
    backup = tmp_path / "backup"
    with Ingestion(live) as ingestion:
        while ingestion.appended < 50:
            time.sleep(0.01)
        before = _size(live)
        code, output = run("backup", str(backup))
        after = _size(live)
    assert 0 == code, output
    assert before < after, "ingestion must have gone on while the backup ran"
    manifest = _manifest(backup)
    assert before <= manifest["ledgerSize"] <= after
    assert {"config.json", "checkpoints.jsonl", "keys/keys.json"} <= set(manifest["files"])  # type: ignore[arg-type]
    assert all(entry["encrypted"] for entry in json.loads((backup / "keys" / "keys.json").read_text())["keys"])

    restored = fresh_target()
    code, output = run("restore", str(backup), "--trust-backup-keys")
    assert 0 == code, output
    assert "no published checkpoint" in output
    assert (0, True) == (run("verify")[0], run("verify")[1].startswith("intact"))
    with Ledger.from_settings(live) as source, Ledger.from_settings(restored) as copy:
        last = int(manifest["ledgerSize"]) - 1  # type: ignore[call-overload]
        assert source.get_by_seq(last).chain_hash == copy.get_by_seq(last).chain_hash
        assert "ops.restore" == copy.get_by_seq(last + 1).type
    append(restored, 30, start=10_000)
    code, output = run("verify")
    assert (0, f"intact: {int(manifest['ledgerSize']) + 31} events") == (code, output.split(",")[0])  # type: ignore[call-overload]


@pytest.mark.parametrize("what", ["database byte", "manifest size"])
def test_a_tampered_backup_is_refused_and_nothing_is_replaced(live: Settings, tmp_path: Path, what: str) -> None:
    append(live, 30)
    backup = tmp_path / "backup"
    assert 0 == run("backup", str(backup))[0]
    if what == "database byte":
        database = next((backup / "database").iterdir())
        data = bytearray(database.read_bytes())
        data[len(data) // 2] ^= 0x01
        database.write_bytes(bytes(data))
        expected = "does not match its SHA-256 in the manifest"
    else:
        manifest = _manifest(backup)
        manifest["ledgerSize"] = 29
        (backup / "manifest.json").write_text(json.dumps(manifest))
        expected = "the manifest was changed after it was signed"
    append(live, 5, start=100)
    code, output = run("restore", str(backup))
    assert (1, True) == (code, expected in output), output
    assert 35 == _size(live)


def test_a_changed_file_with_a_rehashed_manifest_is_refused_for_its_signature(live: Settings, tmp_path: Path) -> None:
    """The MLflow store's models are loaded as code: no file may change along with its hash in the manifest."""
    append(live, 10)
    backup = tmp_path / "backup"
    assert 0 == run("backup", str(backup))[0]
    config = backup / "config.json"
    config.write_text(config.read_text().replace("{", '{"planted": true, ', 1))
    manifest = _manifest(backup)
    manifest["files"]["config.json"] = file_digest(config)  # type: ignore[index]
    (backup / "manifest.json").write_text(json.dumps(manifest))
    append(live, 5, start=100)
    code, output = run("restore", str(backup))
    assert (1, True) == (code, "the manifest was changed after it was signed" in output), output
    assert 15 == _size(live)


def test_sqlite_a_changed_record_with_a_rehashed_and_resigned_manifest_is_refused_naming_the_record(
    live_sqlite: Settings, tmp_path: Path
) -> None:
    """A record is edited inside the SQLite file by someone who also holds the keys and their passphrase
    (the PostgreSQL dump is covered by its hash above): the ledger's own verification still names it."""
    append(live_sqlite, 20)
    backup = tmp_path / "backup"
    assert 0 == run("backup", str(backup))[0]
    database = backup / "database" / "qerberos.db"
    with sqlite3.connect(database) as connection:  # an attacker with the backup drops the guard first
        connection.execute("DROP TRIGGER ledger_entries_no_update")
        connection.execute("UPDATE ledger_entries SET verdict = 'DENY' WHERE seq = 7")
    connection.close()
    manifest = read_manifest(backup)
    rehashed = dataclasses.replace(manifest, files={**manifest.files, "database/qerberos.db": file_digest(database)})
    signer = LogSigner.load(backup, manifest.origin, PASSPHRASE)
    resigned = dataclasses.replace(rehashed, signature=signer.sign_text(manifest_note(rehashed)))
    (backup / "manifest.json").write_text(json.dumps(resigned.to_json()))
    code, output = run("restore", str(backup))
    assert (1, True) == (code, "tampered at sequence number 7" in output), output


def test_an_older_backup_is_refused_unless_forced_with_a_reason_that_lands_in_the_restored_ledger(
    live: Settings, tmp_path: Path
) -> None:
    append(live, 10)
    backup = tmp_path / "backup"
    assert 0 == run("backup", str(backup))[0]
    append(live, 10, start=10)
    with Ledger.from_settings(live) as ledger:
        ledger.checkpoint(force=True)  # the deployment published a checkpoint of 20

    code, output = run("restore", str(backup))
    assert (1, True) == (code, "roll the log back" in output and "a consistent prefix" in output), output
    assert (2, True) == ((result := run("restore", str(backup), "--force"))[0], "--reason" in result[1])
    assert 20 == _size(live)

    reason = "primary disk lost; INC-42 approved by the on-call lead"
    code, output = run("restore", str(backup), "--force", "--reason", reason)
    assert (0, True) == (code, "(FORCED)" in output), output
    with Ledger.from_settings(live) as ledger:
        audit = ledger.get_by_seq(10)
        assert (11, "ops.restore.forced", reason) == (ledger.size(), audit.type, dict(audit.details or {})["reason"])
    assert 0 == run("verify")[0]
    assert 1 == len(list(live.home.glob("checkpoints.before-restore-*")))  # the history of the rolled-back log


def test_sqlite_a_backup_older_than_what_the_signer_signed_is_refused_when_the_database_forgot_it(
    live_sqlite: Settings, tmp_path: Path
) -> None:
    append(live_sqlite, 10)
    backup = tmp_path / "backup"
    assert 0 == run("backup", str(backup))[0]
    append(live_sqlite, 10, start=10)
    with Ledger.from_settings(live_sqlite) as ledger:
        ledger.checkpoint(force=True)
        as_attacker(ledger, "DELETE FROM checkpoints WHERE size > 10")  # the signer's own memory still says 20
    code, output = run("restore", str(backup))
    assert (1, True) == (code, "published a checkpoint of 20" in output), output


def test_sqlite_backup_refuses_without_a_passphrase_and_restore_needs_the_right_one(
    live_sqlite: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = live_sqlite
    append(live, 5)
    monkeypatch.delenv("QERBEROS_KEY_PASSPHRASE")
    get_settings.cache_clear()
    refused = tmp_path / "refused"
    code, output = run("backup", str(refused))
    assert (2, True) == (code, "QERBEROS_KEY_PASSPHRASE is not set: refusing" in output), output
    assert not (refused / "manifest.json").exists()

    monkeypatch.setenv("QERBEROS_KEY_PASSPHRASE", PASSPHRASE)
    get_settings.cache_clear()
    backup = tmp_path / "backup"
    assert 0 == run("backup", str(backup))[0]
    keys_before = keys.list_keys(live.home)
    for passphrase, message in ((None, "QERBEROS_KEY_PASSPHRASE is not set"), ("wrong", "wrong passphrase")):
        if passphrase is None:
            monkeypatch.delenv("QERBEROS_KEY_PASSPHRASE")
        else:
            monkeypatch.setenv("QERBEROS_KEY_PASSPHRASE", passphrase)
        get_settings.cache_clear()
        code, output = run("restore", str(backup))
        assert (2, True) == (code, message in output), output
    assert keys_before == keys.list_keys(live.home)  # nothing replaced: the live keys are still unencrypted


def test_sqlite_a_backup_signed_by_other_keys_is_refused_over_a_live_deployment(
    live_sqlite: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same origin, same shape, but not this log: its checkpoint is not signed by a key the deployment trusts."""
    append(live_sqlite, 5)
    other = make_settings(monkeypatch, tmp_path / "other-home")
    monkeypatch.setenv("QERBEROS_KEY_PASSPHRASE", PASSPHRASE)
    get_settings.cache_clear()
    initialise(other).close()
    append(get_settings(), 8)
    backup = tmp_path / "backup"
    assert 0 == run("backup", str(backup))[0]

    make_settings(monkeypatch, live_sqlite.home)
    code, output = run("restore", str(backup))
    assert (1, True) == (code, "the manifest's signature does not verify" in output), output
    assert 5 == _size(get_settings())


def test_sqlite_a_fresh_home_trusts_a_backup_only_if_signed_by_the_key_the_operator_names(
    live_sqlite: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh home has no keys of its own: ``--trusted-key`` anchors trust, as the live keys do otherwise;
    with neither, nothing but the backup vouches for it and the restore is refused."""
    append(live_sqlite, 6)
    log_key = run("key")[1].strip()
    backup = tmp_path / "backup"
    assert 0 == run("backup", str(backup))[0]
    other = make_settings(monkeypatch, tmp_path / "other-home")
    monkeypatch.setenv("QERBEROS_KEY_PASSPHRASE", PASSPHRASE)
    get_settings.cache_clear()
    initialise(other).close()
    other_key = run("key")[1].strip()

    make_settings(monkeypatch, tmp_path / "fresh-home")
    monkeypatch.setenv("QERBEROS_KEY_PASSPHRASE", PASSPHRASE)
    get_settings.cache_clear()
    code, output = run("restore", str(backup))  # nothing trusted: the backup would vouch for itself
    assert (2, True, True) == (code, "trusts no verifier key yet" in output, log_key in output), output
    assert not (tmp_path / "fresh-home" / "qerberos.db").exists()
    assert (2, True) == (
        (result := run("restore", str(backup), "--trusted-key", "q+0+x"))[0],
        "not a verifier key" in result[1],
    )
    code, output = run("restore", str(backup), "--trusted-key", other_key)
    assert (1, True) == (code, "the manifest's signature does not verify" in output), output
    assert not (tmp_path / "fresh-home" / "qerberos.db").exists()
    code, output = run("restore", str(backup), "--trusted-key", log_key)
    assert 0 == code, output
    assert 7 == _size(get_settings())  # the six events and the restore's own audit event


@pytest.fixture
def mlflow_beside_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A deployment in SITE/data (with its admin.token) whose MLflow store is SITE/mlflow.db, with an
    experiment whose artifacts are in SITE/qerberos-detectors: the MLflow store's folder holds the home."""
    site = tmp_path / "site"
    settings = make_settings(monkeypatch, site / "data")
    uri = f"sqlite:///{site / 'mlflow.db'}"
    monkeypatch.setenv("QERBEROS_MLFLOW_TRACKING_URI", uri)
    initialise(settings).close()
    engine = create_ledger_engine(settings.database_url)
    try:
        create_identity_tables(engine)
        assert ensure_admin_token_file(engine, settings.home) is not None
    finally:
        engine.dispose()
    append(settings, 6)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("qerberos-detectors", (site / "qerberos-detectors").as_uri())
    client.log_text(client.create_run(experiment).info.run_id, "a detector", "model/detector.txt")
    monkeypatch.setenv("QERBEROS_KEY_PASSPHRASE", PASSPHRASE)
    get_settings.cache_clear()
    return get_settings()


@pytest.mark.parametrize("where", ["in the MLflow store's folder", "elsewhere"])
def test_sqlite_backup_beside_an_mlflow_store_copies_each_store_once_no_token_and_restores_in_place(
    mlflow_beside_the_data: Settings, tmp_path: Path, where: str
) -> None:
    live = mlflow_beside_the_data
    site = live.home.parent
    backup = site / "backups" / "today" if where.startswith("in") else tmp_path / "elsewhere" / "today"

    code, output = run("backup", str(backup))

    assert 0 == code, output
    files = set(_manifest(backup)["files"])  # type: ignore[call-overload]
    mlflow = {name for name in files if name.startswith("mlflow/")}
    assert {"mlflow/site/mlflow.db"} == {name for name in mlflow if "/qerberos-detectors/" not in name}
    assert any(name.endswith("/artifacts/model/detector.txt") for name in mlflow)
    assert {"database/qerberos.db"} == {name for name in files if name.endswith((".db", ".db-wal", ".db-shm"))} - mlflow
    assert [] == [path.name for path in backup.rglob("*") if path.name in ("admin.token", "qerberos.db-wal")]
    assert 0o700 == backup.stat().st_mode & 0o777

    code, output = run("restore", str(backup))
    assert 0 == code, output
    assert (0, True) == (run("verify")[0], run("verify")[1].startswith("intact"))
    assert (live.home / "admin.token").is_file()  # the home is not MLflow's: never replaced
    assert [] == list(site.glob("data.before-restore-*"))
    assert 1 == len(list(site.glob("mlflow.db.before-restore-*")))
    restored = sqlite3.connect(site / "mlflow.db")
    try:
        experiments = restored.execute("SELECT name FROM experiments WHERE name != 'Default'").fetchall()
    finally:
        restored.close()
    assert [("qerberos-detectors",)] == experiments


def test_sqlite_a_backup_that_fails_midway_leaves_nothing_behind(
    mlflow_beside_the_data: Settings, tmp_path: Path
) -> None:
    reports = mlflow_beside_the_data.home / "reports"
    reports.mkdir()
    os.mkfifo(reports / "pipe")  # copied after the database and the keys: a named pipe cannot be
    backup = tmp_path / "backups" / "today"

    code, output = run("backup", str(backup))

    assert (2, True) == (code, "cannot write the backup" in output), output
    assert [] == list((tmp_path / "backups").iterdir())


def test_sqlite_restore_gives_each_key_the_protection_it_had_in_its_home(live_sqlite: Settings, tmp_path: Path) -> None:
    live = live_sqlite  # its first key made without a passphrase; a second, rotated in, with one
    keys.rotate(live.home, live.log_origin, PASSPHRASE)
    before = {key.key_id: key.encrypted for key in keys.list_keys(live.home)}
    assert [False, True] == sorted(before.values())
    append(live, 5)
    backup = tmp_path / "backup"
    assert 0 == run("backup", str(backup))[0]

    code, output = run("restore", str(backup))
    assert 0 == code, output
    restored = keys.list_keys(live.home)
    assert before == {key.key_id: key.encrypted for key in restored}
    for key in restored:  # each file as its manifest entry says: readable without the passphrase iff unencrypted
        password = PASSPHRASE.encode() if key.encrypted else None
        load_pem_private_key((keys.keys_dir(live.home) / key.file).read_bytes(), password)
    assert 0 == run("verify")[0]
