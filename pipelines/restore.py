"""``qerberos restore DIR``: verify a backup completely, and only then replace the live deployment.

Checks, in order, each failing closed (``RestoreRefusedError``, nothing replaced):
1. the manifest's signature, and the backup's signed checkpoint, against the backup's keys and, when there
   are any, the keys the deployment trusts (its own, and those the operator names with ``trusted_keys``):
   the manifest for exactly what it says, the checkpoint for the log's origin and exactly the backup's size.
   A home that trusts no key (a fresh one, with no ``trusted_keys``) refuses, unless the operator takes the
   backup's own keys on trust (``trust_backup_keys``);
2. every file against its SHA-256 in the manifest, and no file unlisted;
3. every record, restored into a scratch database next to the live one: ``verify_ledger`` (canonical
   bytes, chain, Merkle nodes, every checkpoint's signature and root) and the root against the backup's
   signed checkpoint;
4. consistency with the newest checkpoint the live deployment published (when its database answers): an
   RFC 9162 consistency proof from the smaller tree to the larger, checked by ``qerberos.verifier``. A
   backup that forks from the published log is refused, always; an older one (fewer entries than
   published) only with ``force`` and a ``reason``, which is logged and appended to the restored ledger
   as an ``ops.restore.forced`` audit event.

Then the database is replaced (SQLite: the verified scratch file is renamed over the live one, the old
one kept beside it as ``*.before-restore-<time>``; PostgreSQL: ``pg_restore --clean`` in one
transaction), and the keys, reports and local MLflow store (the old ones kept as ``*.before-restore-*``).
Every restore is itself appended to the restored ledger (``ops.restore`` or ``ops.restore.forced``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import getpass
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from models import keys
from models.checkpoint_history import CheckpointHistory
from models.database import SQLITE_SUFFIXES, create_ledger_engine, sqlite_file
from models.database_snapshot import (
    current_schema,
    libpq_url,
    make_self_contained,
    restore_postgres_dump,
    run_admin_statement,
    tree_head,
)
from models.ledger import Ledger
from models.reader import LedgerReader
from models.records import Actor, NewEvent
from models.signer_state import SignerState
from models.signing import LogSigner
from models.verification import verify_ledger
from pipelines.backup import (
    MANIFEST,
    BackupManifest,
    file_digest,
    manifest_note,
    mlflow_local_store,
    qerberos_paths,
    read_manifest,
)
from qerberos import verifier
from qerberos.durable import fsync_directory
from qerberos.errors import ConfigurationError, IntegrityError, LedgerError
from qerberos.settings import Settings

__all__ = ["RestoreRefusedError", "RestoreResult", "restore_backup"]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


class RestoreRefusedError(IntegrityError):
    """The backup does not verify, forks from the published log, or is older and the restore not forced."""


@dataclasses.dataclass(frozen=True, slots=True)
class RestoreResult:
    size: int  # entries restored from the backup
    published_size: int | None  # the live deployment's newest checkpoint, if it had one
    consistency: str  # what was proven about the backup and the published log
    forced: bool
    audit_seq: int  # sequence number of the ops.restore event


@dataclasses.dataclass(frozen=True, slots=True)
class _Published:
    size: int
    root: bytes


def restore_backup(
    settings: Settings,
    directory: Path,
    *,
    force: bool = False,
    reason: str | None = None,
    trusted_keys: Sequence[str] = (),
    trust_backup_keys: bool = False,
    progress: Progress | None = None,
) -> RestoreResult:
    """Verify the backup in ``directory`` against itself and the live deployment, then restore it.

    ``trusted_keys`` (verifier keys, as ``qerberos key`` prints them) are keys the backup must be signed by,
    beside the deployment's own: what anchors trust in a fresh home, which has no keys of its own. Where no
    key is trusted, nothing but the backup vouches for itself: it is refused unless ``trust_backup_keys``.
    """
    if force and not (reason and reason.strip()):
        raise ConfigurationError("a forced restore needs a reason (--reason TEXT): it is logged and audited")
    _check_key_format(trusted_keys)
    manifest = read_manifest(directory)
    _check_target(settings, manifest)
    passphrase = _passphrase(settings)
    backup_keys = keys.verifier_keys(directory)
    anchors = [*_live_keys(settings), *trusted_keys]
    if not anchors:
        _check_trust_on_first_use(backup_keys, trust_backup_keys)
    _check_signature(manifest, backup_keys, anchors)
    signed = _verified_checkpoint(manifest, backup_keys, anchors)
    _check_files(directory, manifest, progress)
    keys.load_signers(directory, passphrase)  # a wrong passphrase shows now, before anything is replaced
    trusted = sorted({*backup_keys, *anchors})

    with _scratch(settings, directory, manifest) as scratch:
        _verify_scratch(scratch, manifest, backup_keys, signed, progress)
        published = _published_checkpoint(settings, trusted, force)
        consistency, older = _check_consistency(settings, scratch, manifest, signed, published, trusted)
        _refuse_rollback(directory, manifest, published, consistency, older=older, force=force, reason=reason)
        _replace_database(settings, directory, manifest, scratch)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    _restore_keys(settings, directory, passphrase, stamp)
    _restart_signer_memory(settings.home, manifest.checkpoint, stamp, forced=force)
    if (directory / "reports").is_dir():
        _replace_tree(directory / "reports", settings.home / "reports", stamp)
    _restore_mlflow(settings, directory, manifest, stamp)
    audit_seq = _audit(settings, directory, manifest, published, consistency, reason if force else None)
    logger.info("restored %d entries from %s", manifest.ledger_size, directory)
    return RestoreResult(
        size=manifest.ledger_size,
        published_size=None if published is None else published.size,
        consistency=consistency,
        forced=force,
        audit_seq=audit_seq,
    )


# --- checks -----------------------------------------------------------------------------------------------


def _passphrase(settings: Settings) -> str:
    if not settings.key_passphrase:
        raise ConfigurationError(
            "QERBEROS_KEY_PASSPHRASE is not set: the backup's private keys are encrypted with the passphrase "
            "that was set when it was taken"
        )
    return settings.key_passphrase


def _live_keys(settings: Settings) -> list[str]:
    """The deployment's own verifier keys (none in a fresh home)."""
    return keys.verifier_keys(settings.home) if (keys.keys_dir(settings.home) / "keys.json").is_file() else []


def _refuse_rollback(
    directory: Path,
    manifest: BackupManifest,
    published: _Published | None,
    consistency: str,
    *,
    older: bool,
    force: bool,
    reason: str | None,
) -> None:
    """A backup older than what the deployment published is refused unless forced; a forced restore is logged."""
    if older and not force:
        raise RestoreRefusedError(
            f"the backup holds {manifest.ledger_size} entries but the live deployment already published a "
            f"checkpoint of {published.size if published else '?'}: restoring it would roll the log back "
            f"({consistency}); use --force --reason TEXT if that is intended"
        )
    if force and reason:
        logger.warning(
            "forced restore of %s (%d entries, published %s): %s",
            directory, manifest.ledger_size, published.size if published else None, reason,
        )  # fmt: skip


def _check_target(settings: Settings, manifest: BackupManifest) -> None:
    if manifest.origin != settings.log_origin:
        raise ConfigurationError(
            f"the backup is of the log {manifest.origin!r}, this deployment's QERBEROS_LOG_ORIGIN is "
            f"{settings.log_origin!r}"
        )
    target = "sqlite" if settings.is_sqlite else "postgresql"
    if manifest.backend != target:
        raise ConfigurationError(f"the backup is of a {manifest.backend} ledger, QERBEROS_DATABASE_URL is {target}")


def _check_files(directory: Path, manifest: BackupManifest, progress: Progress | None) -> None:
    present = {
        path.relative_to(directory).as_posix()
        for path in directory.rglob("*")
        if path.is_file() and path.name != MANIFEST
    }
    listed = set(manifest.files)
    if present - listed:
        raise RestoreRefusedError(f"files not in the manifest: {sorted(present - listed)[:5]}")
    if listed - present:
        raise RestoreRefusedError(f"files missing from the backup: {sorted(listed - present)[:5]}")
    if manifest.database not in listed:
        raise RestoreRefusedError(f"the manifest lists no database file {manifest.database}")
    for done, name in enumerate(sorted(listed), start=1):
        if file_digest(directory / name) != manifest.files[name]:
            raise RestoreRefusedError(f"{name} does not match its SHA-256 in the manifest")
        if progress is not None:
            progress(done, len(listed))


def _check_key_format(trusted_keys: Sequence[str]) -> None:
    for key in trusted_keys:
        try:
            verifier.parse_verifier_key(key)
        except verifier.VerificationError as exc:
            raise ConfigurationError(f"not a verifier key: {exc.reason}") from exc


def _check_trust_on_first_use(backup_keys: list[str], trust_backup_keys: bool) -> None:
    """A home that trusts no key takes the backup's own keys only when the operator says so."""
    if not trust_backup_keys:
        raise ConfigurationError(
            "this home trusts no verifier key yet, so nothing but the backup's own keys would vouch for it "
            f"({', '.join(backup_keys)}): name the log's published verifier key with --trusted-key, or pass "
            "--trust-backup-keys once you have compared these with it"
        )
    logger.warning("trusting the backup's own verifier keys, as the operator asked: %s", ", ".join(backup_keys))


def _check_signature(manifest: BackupManifest, backup_keys: list[str], anchors: list[str]) -> None:
    """The manifest says what its keys signed: its signature verifies, by the backup's keys and, if the
    deployment trusts keys (``anchors``), by one of those, over exactly this manifest's content."""
    try:
        note = verifier.verify_note(manifest.signature, backup_keys)
        if anchors:
            verifier.verify_note(manifest.signature, anchors)
    except verifier.VerificationError as exc:
        raise RestoreRefusedError(f"the manifest's signature does not verify: {exc.reason}") from exc
    if note.text != manifest_note(manifest):
        raise RestoreRefusedError("the manifest was changed after it was signed")


def _verified_checkpoint(manifest: BackupManifest, backup_keys: list[str], anchors: list[str]) -> verifier.Checkpoint:
    """The backup's own checkpoint, signed by its keys and, if the deployment trusts keys, by one of those."""
    try:
        checkpoint = verifier.verify_checkpoint(manifest.checkpoint, backup_keys, manifest.origin)
        if anchors:
            verifier.verify_checkpoint(manifest.checkpoint, anchors, manifest.origin)
    except verifier.VerificationError as exc:
        raise RestoreRefusedError(f"the backup's checkpoint does not verify: {exc.reason}") from exc
    if checkpoint.size != manifest.ledger_size:
        raise RestoreRefusedError(
            f"the manifest says {manifest.ledger_size} entries, its signed checkpoint {checkpoint.size}"
        )
    return checkpoint


def _verify_scratch(
    scratch: Ledger,
    manifest: BackupManifest,
    backup_keys: list[str],
    signed: verifier.Checkpoint,
    progress: Progress | None,
) -> None:
    report = verify_ledger(scratch, progress=progress, checkpoints_elsewhere=[manifest.checkpoint])
    if not report.intact:
        raise RestoreRefusedError(
            f"the backup's ledger is tampered at sequence number {report.first_bad_seq}: {report.problem}"
        )
    with scratch.engine.connect() as connection:
        size, root = tree_head(connection)
    if size != signed.size:
        raise RestoreRefusedError(f"the backup's database holds {size} entries, its signed checkpoint {signed.size}")
    if root != signed.root_hash:
        raise RestoreRefusedError("the backup's Merkle root does not match its signed checkpoint")


def _published_checkpoint(settings: Settings, trusted: list[str], force: bool) -> _Published | None:
    """The larger of the newest checkpoint in the live database (if it answers and has a ledger) and the last
    one the live signer signed (``models.signer_state``, which no database change can move back); verified."""
    notes = [note for note in (_newest_stored_checkpoint(settings), SignerState(settings.home).last_signed()) if note]
    published = None
    for note in notes:
        try:
            checkpoint = verifier.verify_checkpoint(note, trusted, settings.log_origin)
        except verifier.VerificationError as exc:
            if not force:
                raise RestoreRefusedError(
                    f"the live deployment's newest checkpoint does not verify ({exc.reason}): the published log "
                    "cannot be compared; use --force --reason TEXT to restore anyway"
                ) from exc
            logger.warning("the live deployment's newest checkpoint does not verify: %s", exc.reason)
            continue
        if published is None or checkpoint.size > published.size:
            published = _Published(checkpoint.size, checkpoint.root_hash)
    return published


def _newest_stored_checkpoint(settings: Settings) -> str | None:
    url = settings.database_url
    if settings.is_sqlite and not Path(make_url(url).database or "").is_file():
        return None
    try:
        engine = create_ledger_engine(url)
    except SQLAlchemyError:
        return None
    try:
        with LedgerReader(engine, owns_engine=True) as reader:
            note = reader.newest_checkpoint()
    except LedgerError as exc:
        logger.warning("the live database gave no checkpoint (%s): consistency not checked", exc.message)
        return None
    return note


def _restart_signer_memory(home: Path, backup_checkpoint: str, stamp: str, *, forced: bool) -> None:
    """The restored signer remembers the backup's checkpoint: the largest tree it may now extend (the restore
    proved the backup consistent with everything signed before, unless forced). A forced restore may roll
    the log back behind checkpoints it signed: their history is set aside with the rest of the old state."""
    history = CheckpointHistory.of_home(home).directory
    if forced and history.exists():
        os.replace(history, history.with_name(f"{history.name}.before-restore-{stamp}"))
        logger.warning("forced restore: the checkpoint history is set aside as %s.before-restore-%s", history, stamp)
    SignerState(home).reset(backup_checkpoint)


def _check_consistency(
    settings: Settings,
    scratch: Ledger,
    manifest: BackupManifest,
    signed: verifier.Checkpoint,
    published: _Published | None,
    trusted: list[str],
) -> tuple[str, bool]:
    """(what was proven, whether the backup is older than the published log). A fork is refused."""
    size = manifest.ledger_size
    if published is None or published.size == 0:
        return "no published checkpoint to compare with", False
    if size >= published.size:
        proof = scratch.consistency_proof(published.size, size).proof if published.size < size else []
        _prove(published.size, size, published.root, signed.root_hash, proof)
        return f"consistent with the published checkpoint of {published.size}", False
    if size == 0:
        return "the backup is empty", True
    try:  # the larger tree is the live one: its nodes give the proof
        live = Ledger(create_ledger_engine(settings.database_url), LogSigner(settings.log_origin, [], trusted))
        with live:
            proof = live.consistency_proof(size, published.size).proof
    except (LedgerError, SQLAlchemyError, ValueError) as exc:
        return f"older than the published checkpoint of {published.size}; consistency not provable: {exc}", True
    _prove(size, published.size, signed.root_hash, published.root, proof)
    return f"a consistent prefix of the published checkpoint of {published.size}", True


def _prove(first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]) -> None:
    try:
        verifier.verify_consistency(first, second, first_root, second_root, proof)
    except verifier.VerificationError as exc:
        raise RestoreRefusedError(
            f"the backup forks from the published log: the consistency proof {first} -> {second} fails: {exc.reason}"
        ) from exc


# --- scratch database -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _scratch(settings: Settings, directory: Path, manifest: BackupManifest) -> Iterator[Ledger]:
    """The backup restored into a scratch database, as a verify-only Ledger; removed unless moved live."""
    if settings.is_sqlite:
        live = Path(make_url(settings.database_url).database or "")
        live.parent.mkdir(parents=True, exist_ok=True)
        path = live.with_name(f".{live.name}.restore-{os.getpid()}")
        shutil.copyfile(directory / manifest.database, path)
        url = f"sqlite:///{path}"
        cleanup: Callable[[], None] = lambda: _remove_sqlite(path)  # noqa: E731
    else:
        url, cleanup = _scratch_postgres(settings, directory / manifest.database, manifest)
    ledger = Ledger(create_ledger_engine(url), LogSigner(manifest.origin, [], keys.verifier_keys(directory)))
    try:
        yield ledger
    finally:
        ledger.close()
        cleanup()


def _scratch_postgres(settings: Settings, dump: Path, manifest: BackupManifest) -> tuple[str, Callable[[], None]]:
    target = libpq_url(settings.database_url)
    schema = current_schema(target)
    if schema != manifest.schema:
        raise ConfigurationError(
            f"the backup holds the schema {manifest.schema!r}; QERBEROS_DATABASE_URL's search_path puts "
            f"the ledger in {schema!r}"
        )
    url = make_url(target)
    name = f"{url.database}_restore_{uuid.uuid4().hex[:8]}"
    scratch = url.set(database=name).render_as_string(hide_password=False)
    run_admin_statement(target, f'CREATE DATABASE "{name}"')

    def drop() -> None:
        run_admin_statement(target, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    try:
        restore_postgres_dump(scratch, dump, str(manifest.schema), clean=False)
    except Exception:
        drop()
        raise
    return scratch, drop


def _remove_sqlite(path: Path) -> None:
    for suffix in SQLITE_SUFFIXES:
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


# --- replacing --------------------------------------------------------------------------------------------


def _replace_database(settings: Settings, directory: Path, manifest: BackupManifest, scratch: Ledger) -> None:
    if not settings.is_sqlite:
        restore_postgres_dump(
            libpq_url(settings.database_url), directory / manifest.database, str(manifest.schema), clean=True
        )
        return
    scratch.close()
    path = Path(make_url(scratch.engine.url).database or "")
    make_self_contained(path)
    live = Path(make_url(settings.database_url).database or "")
    if live.exists():
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = live.with_name(f"{live.name}.before-restore-{stamp}")
        for suffix in ("-wal", "-shm", ""):  # the log files first: a WAL must never meet another database
            if Path(f"{live}{suffix}").exists():
                os.replace(f"{live}{suffix}", f"{aside}{suffix}")
        logger.info("the replaced database is kept as %s", aside)
    os.replace(path, live)
    fsync_directory(live.parent)


def _restore_keys(settings: Settings, directory: Path, passphrase: str, stamp: str) -> None:
    """The backup's keys replace the home's, each with the protection it had when backed up (a key that was
    unencrypted comes back unencrypted, so the service still starts without a passphrase)."""
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.home, prefix=".keys-restore-") as staging:
        restored = Path(staging) / "keys"
        shutil.copytree(directory / "keys", restored)
        keys.restore_protection(restored, passphrase)
        _replace_tree(restored, keys.keys_dir(settings.home), stamp, private=True)


def _replace_tree(source: Path, target: Path, stamp: str, *, private: bool = False) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.restore-{os.getpid()}")
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(source, staged)
    if private:
        staged.chmod(0o700)
        for path in staged.iterdir():
            path.chmod(0o600 if path.suffix == ".pem" else 0o644)
    if target.exists():
        os.replace(target, target.with_name(f"{target.name}.before-restore-{stamp}"))
    os.replace(staged, target)
    fsync_directory(target.parent)


def _restore_mlflow(settings: Settings, directory: Path, manifest: BackupManifest, stamp: str) -> None:
    """Each entry of the backup's MLflow folder replaces the one of the same name in the store's folder (the
    old one kept aside); the folder's other files stay, and nothing of qerberos's own is ever replaced, even
    by a backup that held it (``qerberos_paths``). The SQLite database takes the name the tracking URI gives."""
    store = mlflow_local_store(settings.mlflow_tracking_uri)
    saved = directory / "mlflow"
    if not manifest.mlflow_included or not saved.is_dir():
        return
    copies = list(saved.iterdir())
    if store is None or len(copies) != 1 or not copies[0].is_dir():
        logger.warning(
            "MLflow store in the backup not restored: tracking URI %s is not local", settings.mlflow_tracking_uri
        )
        return
    store.mkdir(parents=True, exist_ok=True)
    database = sqlite_file(settings.mlflow_tracking_uri)
    saved_database = sqlite_file(manifest.mlflow_tracking_uri)
    kept_out = qerberos_paths(settings)
    for entry in copies[0].iterdir():
        is_database = saved_database is not None and entry.name == saved_database.name
        target = database if is_database and database is not None else store / entry.name
        if target.resolve() in kept_out:
            logger.warning("%s in the backup's MLflow folder is qerberos's own, not MLflow's: not restored", entry.name)
        elif entry.is_dir():
            _replace_tree(entry, target, stamp)
        else:
            _replace_file(entry, target, stamp)


def _replace_file(source: Path, target: Path, stamp: str) -> None:
    """``target`` (and an SQLite file's journal, WAL and shared memory) kept aside, then ``source`` in its place."""
    staged = target.with_name(f".{target.name}.restore-{os.getpid()}")
    shutil.copyfile(source, staged)
    for suffix in reversed(SQLITE_SUFFIXES):  # the log files first: a WAL must never meet another database
        if Path(f"{target}{suffix}").exists():
            os.replace(f"{target}{suffix}", f"{target}.before-restore-{stamp}{suffix}")
    os.replace(staged, target)
    fsync_directory(target.parent)


def _audit(
    settings: Settings,
    directory: Path,
    manifest: BackupManifest,
    published: _Published | None,
    consistency: str,
    reason: str | None,
) -> int:
    """Append the restore itself to the restored ledger, and sign a checkpoint that includes it."""
    details: dict[str, object] = {
        "backup": str(directory.resolve()),
        "backupCreatedAt": manifest.created_at,
        "backupSize": manifest.ledger_size,
        "publishedSize": None if published is None else published.size,
        "consistency": consistency,
    }
    if reason is not None:
        details["reason"] = reason
    event = NewEvent(
        type="ops.restore.forced" if reason is not None else "ops.restore",
        ref=f"backup:{manifest.created_at}",
        actor=Actor(f"local:{_operator()}"),
        layer="qerberos",
        verdict="WARN" if reason is not None else "ALLOW",
        source="cli",
        details=details,
    )
    with Ledger.from_settings(settings) as ledger:
        seq = ledger.append([event])[0].record.seq
        ledger.checkpoint(force=True)
    return seq


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
