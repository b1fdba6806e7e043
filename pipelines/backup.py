"""``qerberos backup DIR``: a consistent online backup, taken while ingestion goes on.

The database is copied from one consistent snapshot: SQLite through its online backup API (one step,
so a concurrent append cannot interleave), PostgreSQL with ``pg_dump --format=custom`` running in a
snapshot exported by a repeatable-read transaction that also reads the ledger's size and Merkle root, so
the dump and what the manifest says of it are the same state. The backup signs a checkpoint of exactly
that state with the log's keys, so every record in it is covered by a signature, not only those up to the
newest checkpoint the service happened to publish.

The backup is written into a staging directory beside DIR (mode 700) and renamed to DIR at the end: a backup
that fails leaves nothing. Each store is copied once, and no secret the format does not protect: never
``admin.token`` or another file of ``QERBEROS_HOME`` but those listed below, wherever the MLflow store lies.

Layout of DIR (refused if DIR exists and is not empty):
- ``database/qerberos.db`` (SQLite) or ``database/qerberos.dump`` (PostgreSQL custom format);
- ``config.json``: ``Settings.public_view()`` (secrets masked);
- ``keys/``: ``keys.json`` and one PKCS#8 PEM per key, encrypted with ``QERBEROS_KEY_PASSPHRASE``
  (required: unencrypted private keys are never written into a backup); ``keys.json`` records whether each
  key was encrypted in its home (``encrypted_in_home``), which restore gives back;
- ``checkpoints.jsonl``: every signed checkpoint of the snapshot, then the backup's own;
- ``reports/`` (``QERBEROS_HOME/reports`` if present);
- ``mlflow/<folder>/``: a local MLflow store. An SQLite store: its database (SQLite's backup API, a
  consistent copy) and the artifact folders of its experiments that lie in the database's folder; a file
  store: its folder. Either way without ``QERBEROS_HOME``, the ledger's database or the backup itself, should
  they lie in that folder;
- ``manifest.json``: format, origin, backend, ledger size, the backup's signed checkpoint, the SHA-256
  of every other file, and ``signature``: a signed note by the log's keys (``manifest_note``) over the
  SHA-256 of the rest of the manifest (RFC 8785), so that no file of the backup (the MLflow store, whose
  models are loaded as code, included) can be changed along with its hash in the manifest.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    load_pem_private_key,
)
from sqlalchemy.engine import make_url

from models import keys
from models.canonical import canonical_json
from models.database import SQLITE_SUFFIXES, create_ledger_engine, sqlite_file
from models.database_snapshot import DatabaseSnapshot, snapshot_postgres, snapshot_sqlite
from models.ledger import Ledger
from models.signing import LogSigner
from qerberos.errors import ConfigurationError, DependencyUnavailableError
from qerberos.output_directory import staged_output_directory
from qerberos.settings import Settings

__all__ = [
    "DATABASE_DUMP",
    "DATABASE_FILE",
    "MANIFEST",
    "BackupManifest",
    "create_backup",
    "file_digest",
    "manifest_note",
    "mlflow_local_store",
    "qerberos_paths",
    "read_manifest",
]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
MANIFEST = "manifest.json"
DATABASE_FILE = "database/qerberos.db"
DATABASE_DUMP = "database/qerberos.dump"
_FORMAT = 2  # 2: the manifest is signed
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True, slots=True)
class BackupManifest:
    """What ``manifest.json`` says: the snapshot's size and signed checkpoint, and every file's hash."""

    origin: str
    backend: str  # "sqlite" or "postgresql"
    schema: str | None  # PostgreSQL: the schema the dump holds
    created_at: str
    ledger_size: int
    checkpoint: str  # signed note over exactly ``ledger_size`` entries
    mlflow_tracking_uri: str
    mlflow_included: bool
    files: Mapping[str, str]  # relative path -> "sha256:<hex>"
    signature: str  # ``manifest_note`` of ``body()``, signed by the log's keys

    @property
    def database(self) -> str:
        return DATABASE_FILE if self.backend == "sqlite" else DATABASE_DUMP

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "signature": self.signature}

    def body(self) -> dict[str, Any]:
        """Everything the manifest says but its signature: what the signature covers."""
        return {
            "format": _FORMAT,
            "origin": self.origin,
            "backend": self.backend,
            "schema": self.schema,
            "createdAt": self.created_at,
            "ledgerSize": self.ledger_size,
            "checkpoint": self.checkpoint,
            "mlflow": {"trackingUri": self.mlflow_tracking_uri, "included": self.mlflow_included},
            "files": dict(sorted(self.files.items())),
        }


def read_manifest(directory: Path) -> BackupManifest:
    """Parse ``manifest.json``; a missing or malformed manifest is a ``ConfigurationError``."""
    path = directory / MANIFEST
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document["format"] != _FORMAT:
            raise ValueError(
                f"format {document['format']!r}, expected {_FORMAT} (format 1 backups, whose manifests were not"
                " signed, cannot be restored by this version)"
            )
        files = document["files"]
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise ValueError("files must map paths to hashes")
        return BackupManifest(
            origin=str(document["origin"]),
            backend=_one_of(document["backend"], ("sqlite", "postgresql")),
            schema=None if document["schema"] is None else str(document["schema"]),
            created_at=str(document["createdAt"]),
            ledger_size=_count(document["ledgerSize"]),
            checkpoint=str(document["checkpoint"]),
            mlflow_tracking_uri=str(document["mlflow"]["trackingUri"]),
            mlflow_included=bool(document["mlflow"]["included"]),
            files={str(name): value for name, value in files.items()},
            signature=str(document["signature"]),
        )
    except FileNotFoundError as exc:
        raise ConfigurationError(f"{directory} is not a qerberos backup: no {MANIFEST}") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc


def create_backup(settings: Settings, directory: Path, *, progress: Progress | None = None) -> BackupManifest:
    """Write a backup of the running deployment into ``directory`` (new or empty) and return its manifest."""
    passphrase = settings.key_passphrase
    if not passphrase:
        raise ConfigurationError(
            "QERBEROS_KEY_PASSPHRASE is not set: refusing to write the private signing keys into a backup "
            "unencrypted; set it, and keep it apart from the backup (restore needs it)"
        )
    signer = LogSigner.load(settings.home, settings.log_origin, passphrase)
    with staged_output_directory(directory) as staging:
        try:
            manifest = _write_backup(settings, staging, signer, passphrase, _stepper(progress, 6), (directory, staging))
        except OSError as exc:  # a full disk, a file that cannot be copied
            raise ConfigurationError(f"cannot write the backup: {exc}") from exc
    logger.info("backup of %d events written to %s", manifest.ledger_size, directory)
    return manifest


def _write_backup(
    settings: Settings,
    directory: Path,
    signer: LogSigner,
    passphrase: str,
    step: Callable[[], None],
    backup_paths: Sequence[Path],
) -> BackupManifest:
    if settings.is_sqlite:
        snapshot = snapshot_sqlite(settings.database_url, directory / DATABASE_FILE)
    else:
        snapshot = snapshot_postgres(settings.database_url, directory / DATABASE_DUMP)
    step()
    with Ledger(create_ledger_engine(settings.database_url), signer) as live:
        note = live.sign_tree(snapshot.size, snapshot.root)  # refused unless consistent with what was signed
    _write_checkpoints(directory, snapshot, note)
    _write_json(directory / "config.json", settings.public_view())
    step()
    _backup_keys(settings.home, directory / "keys", passphrase)
    step()
    reports = settings.home / "reports"
    if reports.is_dir():
        shutil.copytree(reports, directory / "reports")
    step()
    mlflow_included = _backup_mlflow(settings, directory / "mlflow", backup_paths)
    step()
    unsigned = BackupManifest(
        origin=settings.log_origin,
        backend="sqlite" if settings.is_sqlite else "postgresql",
        schema=snapshot.schema,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        ledger_size=snapshot.size,
        checkpoint=note,
        mlflow_tracking_uri=settings.mlflow_tracking_uri,
        mlflow_included=mlflow_included,
        files={name: file_digest(directory / name) for name in _files(directory)},
        signature="",
    )
    manifest = dataclasses.replace(unsigned, signature=signer.sign_text(manifest_note(unsigned)))
    _write_json(directory / MANIFEST, manifest.to_json())
    step()
    return manifest


# --- shared with restore ----------------------------------------------------------------------------------


def manifest_note(manifest: BackupManifest) -> str:
    """The text the manifest's signature signs: the origin, what it is, and the SHA-256 of ``body()`` in
    RFC 8785 form. Its second line is not a number, so it can never pass for a checkpoint of the log."""
    digest = hashlib.sha256(canonical_json(manifest.body())).hexdigest()
    return f"{manifest.origin}\nqerberos backup manifest\nsha256:{digest}\n"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


# --- database ---------------------------------------------------------------------------------------------


def _write_checkpoints(directory: Path, snapshot: DatabaseSnapshot, note: str) -> None:
    """The snapshot's signed checkpoints, oldest first, then the backup's own."""
    lines = [json.dumps({"size": _note_size(n), "note": n}) for n in snapshot.notes]
    lines.append(json.dumps({"size": snapshot.size, "note": note, "backup": True}))
    (directory / "checkpoints.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _note_size(note: str) -> int:
    return int(note.split("\n", 2)[1])


# --- keys, reports, MLflow --------------------------------------------------------------------------------


def _backup_keys(home: Path, target: Path, passphrase: str) -> None:
    """Every key in the manifest, each private key re-encrypted with ``passphrase``."""
    source = keys.keys_dir(home)
    listed = keys.list_keys(home)
    if not listed:
        raise ConfigurationError(f"no signing keys in {source}: run `qerberos init`")
    target.mkdir(mode=0o700, parents=True)
    password = passphrase.encode("utf-8")
    for key in listed:
        pem = (source / key.file).read_bytes()
        try:
            private = load_pem_private_key(pem, password if key.encrypted else None)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"cannot load signing key {key.file} (wrong QERBEROS_KEY_PASSPHRASE?)") from exc
        encrypted = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(password))
        descriptor = os.open(target / key.file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(encrypted)
    document = json.loads((source / "keys.json").read_text(encoding="utf-8"))
    for entry in document["keys"]:
        entry[keys.ENCRYPTED_IN_HOME] = entry["encrypted"]  # restore gives each key its protection back
        entry["encrypted"] = True
    _write_json(target / "keys.json", document)


def mlflow_local_store(tracking_uri: str) -> Path | None:
    """The local directory of an MLflow store, None if remote: a ``file:`` store, or the directory of an
    SQLite store's file, which holds its artifacts too in the default layout (``$QERBEROS_HOME/mlflow.db``
    beside ``$QERBEROS_HOME/<experiment>/``)."""
    parsed = urllib.parse.urlparse(tracking_uri)
    if parsed.scheme in ("", "file"):
        return Path(urllib.parse.unquote(parsed.path or tracking_uri)).resolve()
    if parsed.scheme == "sqlite":
        return Path(make_url(tracking_uri).database or "").resolve().parent
    return None


def qerberos_paths(settings: Settings) -> set[Path]:
    """What belongs to qerberos itself and never to an MLflow store, even inside its folder: ``QERBEROS_HOME``
    (its tokens, keys, database and reports are backed up once, as they are, or not at all) and the ledger's
    SQLite files."""
    paths = {settings.home.resolve()}
    database = sqlite_file(settings.database_url)
    if database is not None:
        paths |= {Path(f"{database.resolve()}{suffix}") for suffix in SQLITE_SUFFIXES}
    return paths


def _backup_mlflow(settings: Settings, target: Path, backup_paths: Sequence[Path]) -> bool:
    """A local MLflow store into ``target/<folder>`` (see the module's docstring); False when there is none."""
    tracking_uri = settings.mlflow_tracking_uri
    store = mlflow_local_store(tracking_uri)
    if store is None:
        logger.info("MLflow tracking server %s is remote: recorded, not copied", tracking_uri)
        return False
    if not store.is_dir():
        return False
    ignore = _ignoring(qerberos_paths(settings) | {path.resolve() for path in backup_paths})
    copy = target / store.name
    database = sqlite_file(tracking_uri)
    if database is None:  # a file store: MLflow's own folder
        shutil.copytree(store, copy, ignore=ignore)
        return True
    if not database.is_file():
        return False
    copy.mkdir(parents=True)
    try:
        source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=60)
        destination = sqlite3.connect(copy / database.name)
        try:
            source.backup(destination)
        finally:
            destination.close()
            source.close()
    except sqlite3.Error as exc:
        raise DependencyUnavailableError(f"cannot copy the MLflow store {database}: {exc}") from exc
    for folder in _artifact_folders(copy / database.name, store):
        shutil.copytree(folder, copy / folder.relative_to(store), ignore=ignore)
    return True


def _artifact_folders(database: Path, store: Path) -> list[Path]:
    """The artifact folders of an SQLite MLflow store's experiments that lie in ``store`` (outermost only);
    one elsewhere is logged, not copied."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        locations = [str(row[0]) for row in connection.execute("SELECT artifact_location FROM experiments")]
    except sqlite3.Error as exc:
        raise DependencyUnavailableError(f"cannot read the MLflow store's experiments: {exc}") from exc
    finally:
        connection.close()
    inside: list[Path] = []
    for location in locations:
        parsed = urllib.parse.urlparse(location)
        folder = Path(urllib.parse.unquote(parsed.path)).resolve() if parsed.scheme in ("", "file") else None
        if folder is not None and folder.is_relative_to(store) and folder != store:
            inside.append(folder)
        else:
            logger.warning("MLflow artifacts at %s are not in the store's folder %s: not backed up", location, store)
    folders: list[Path] = []
    for folder in sorted(inside, key=lambda path: len(path.parts)):  # outer folders first
        if folder.is_dir() and not any(folder.is_relative_to(outer) for outer in folders):
            folders.append(folder)
    return folders


def _ignoring(paths: set[Path]) -> Callable[[str, list[str]], set[str]]:
    """A ``copytree`` filter that leaves out exactly ``paths`` (resolved)."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {name for name in names if (Path(folder) / name).resolve() in paths}

    return ignore


# --- helpers ----------------------------------------------------------------------------------------------


def _files(directory: Path) -> Iterator[str]:
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            yield path.relative_to(directory).as_posix()


def _write_json(path: Path, document: Any) -> None:
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def _stepper(progress: Progress | None, total: int) -> Callable[[], None]:
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    return step


def _one_of(value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{value!r} is not one of {allowed}")
    return str(value)


def _count(value: object) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"ledger size {value!r} is not a count")
    return value
