"""The log's signing keys on disk, in ``QERBEROS_HOME/keys/``.

Layout: one PKCS#8 PEM file per key, ``<key id>.pem``, mode 0600 (encrypted when a passphrase is given),
and ``keys.json``, the manifest naming each key, its public key and whether it is active or retired. The
manifest holds only public data, so the verifier keys can be listed without the passphrase. Every change
to the manifest runs under an exclusive file lock and replaces the file atomically, so several processes
running ``qerberos init`` at once end up with one key.

A key's name is the log origin. Rotation adds a key: the old and the new one both sign each checkpoint
until the old one is retired, so every verifier that trusts either key keeps verifying without a gap.
Retired keys stay listed (their public keys verify older checkpoints) but no longer sign.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from models.signed_note import NoteSigner, format_verifier_key, key_id
from qerberos.durable import fsync_directory
from qerberos.errors import ConfigurationError, QerberosError

__all__ = [
    "ENCRYPTED_IN_HOME",
    "KeyInfo",
    "ensure_key",
    "generate",
    "keys_dir",
    "list_keys",
    "load_signers",
    "locked",
    "retire",
    "rotate",
    "verifier_keys",
    "write_atomically",
]

logger = logging.getLogger(__name__)

_MANIFEST = "keys.json"
_LOCK = ".lock"
_FORMAT = 1
# In a backup's keys.json (where every key is encrypted): whether the key was encrypted in its home.
ENCRYPTED_IN_HOME = "encrypted_in_home"


@dataclasses.dataclass(frozen=True, slots=True)
class KeyInfo:
    """What the manifest says of one key (public data only)."""

    name: str
    key_id: int
    public_key: bytes
    file: str
    encrypted: bool
    created_at: str
    retired_at: str | None = None

    @property
    def active(self) -> bool:
        return self.retired_at is None

    @property
    def key_id_hex(self) -> str:
        return f"{self.key_id:08x}"

    @property
    def verifier_key(self) -> str:
        return format_verifier_key(self.name, self.public_key)


def keys_dir(home: Path) -> Path:
    return Path(home) / "keys"


def list_keys(home: Path) -> list[KeyInfo]:
    """Every key in the manifest, active and retired, oldest first."""
    return _read_manifest(keys_dir(home))


def verifier_keys(home: Path, *, include_retired: bool = True) -> list[str]:
    """The verifier keys (``name+id+base64``); retired ones too by default, as old checkpoints need them."""
    return [key.verifier_key for key in list_keys(home) if include_retired or key.active]


def generate(home: Path, origin: str, passphrase: str | None = None) -> KeyInfo:
    """Create a new active Ed25519 key named ``origin``; the keys already active stay active."""
    with locked(keys_dir(home)) as directory:
        return _generate(directory, origin, passphrase)


def rotate(home: Path, origin: str, passphrase: str | None = None) -> KeyInfo:
    """Add a new key for ``origin``; the old ones keep signing until ``retire``d."""
    with locked(keys_dir(home)) as directory:
        if not any(key.active and key.name == origin for key in _read_manifest(directory)):
            raise ConfigurationError(f"no active key for {origin!r} to rotate: run `qerberos init` first")
        created = _generate(directory, origin, passphrase)
    logger.info("key rotation: new key %s for %s signs alongside the old", created.key_id_hex, origin)
    return created


def retire(home: Path, key: int | str) -> KeyInfo:
    """Stop signing with ``key`` (its id, as an int or 8 hex digits); it stays listed for verification."""
    wanted = key if isinstance(key, int) else _parse_key_id(key)
    with locked(keys_dir(home)) as directory:
        keys = _read_manifest(directory)
        matches = [k for k in keys if k.key_id == wanted]
        if not matches:
            raise ConfigurationError(f"no key {wanted:08x} in {directory}")
        target = matches[0]
        if not target.active:
            return target
        if not any(k.active and k.name == target.name and k.key_id != wanted for k in keys):
            raise ConfigurationError(
                f"key {wanted:08x} is the last active key of {target.name!r}: rotate first, then retire it"
            )
        retired = dataclasses.replace(target, retired_at=_now())
        _write_manifest(directory, [retired if k.key_id == wanted else k for k in keys])
    logger.info("retired signing key %s of %s", retired.key_id_hex, retired.name)
    return retired


def ensure_key(home: Path, origin: str, passphrase: str | None = None) -> KeyInfo:
    """The active key for ``origin``, created if there is none; safe to call again (``qerberos init``).

    Refuses when the active keys are for another origin (the log's identity would silently change), and
    checks that the existing keys load with ``passphrase``, so a wrong passphrase shows at ``init``.
    """
    with locked(keys_dir(home)) as directory:
        active = [key for key in _read_manifest(directory) if key.active]
        other = sorted({key.name for key in active} - {origin})
        if other:
            raise ConfigurationError(
                f"the signing keys in {directory} are for {', '.join(other)}, not {origin!r}: "
                "set QERBEROS_LOG_ORIGIN to the log's origin, or retire those keys"
            )
        if not active:
            created = _generate(directory, origin, passphrase)
            logger.info("created signing key %s for %s", created.key_id_hex, origin)
            return created
    load_signers(home, passphrase)
    return active[-1]


def load_signers(home: Path, passphrase: str | None = None) -> list[NoteSigner]:
    """Every active key, oldest first, ready to sign (several during a rotation)."""
    directory = keys_dir(home)
    active = [key for key in _read_manifest(directory) if key.active]
    if not active:
        raise ConfigurationError(f"no active signing key in {directory}: run `qerberos init`")
    return [_load(directory, key, passphrase) for key in active]


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[Path]:
    """``directory`` (created mode 0700 if missing) under an exclusive lock that other processes share."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigurationError(f"cannot use the key directory {directory}: {exc.strerror}") from exc
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield directory
    finally:
        os.close(descriptor)  # closing releases the lock


def restore_protection(directory: Path, passphrase: str) -> None:
    """Give the keys of a backup's copy (``directory``, all encrypted) the protection they had in their home:
    each the backup records as unencrypted there (``ENCRYPTED_IN_HOME`` false) is decrypted again, so a home
    that ran without a passphrase still starts without one. A backup that does not say keeps its keys encrypted."""
    path = directory / _MANIFEST
    document = json.loads(path.read_text(encoding="utf-8"))
    for entry in document["keys"]:
        if entry.pop(ENCRYPTED_IN_HOME, True) or not entry["encrypted"]:
            continue
        key_file = directory / Path(str(entry["file"])).name
        try:
            private = load_pem_private_key(key_file.read_bytes(), passphrase.encode("utf-8"))
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"cannot load signing key {key_file} (wrong passphrase?)") from exc
        _write_private(key_file, private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        entry["encrypted"] = False
    write_atomically(path, (json.dumps(document, indent=2) + "\n").encode("utf-8"), 0o644)


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` (file mode ``mode``), durably: never half written, even at a crash."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as file:
            os.fchmod(file.fileno(), mode)  # whatever the umask
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        fsync_directory(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise ConfigurationError(f"cannot write {path}: {exc.strerror}") from exc


# --- private ----------------------------------------------------------------------------------------------


def _generate(directory: Path, origin: str, passphrase: str | None) -> KeyInfo:
    try:
        signer = NoteSigner.generate(origin)
    except QerberosError as exc:
        raise ConfigurationError(f"cannot make a signing key named {origin!r}: {exc.message}") from exc
    keys = _read_manifest(directory)
    if any(key.key_id == signer.key_id for key in keys):  # 1 in 2^32: try again with a fresh key
        return _generate(directory, origin, passphrase)
    encryption = BestAvailableEncryption(passphrase.encode("utf-8")) if passphrase else NoEncryption()
    pem = signer.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption)
    info = KeyInfo(
        name=origin,
        key_id=signer.key_id,
        public_key=signer.public_key,
        file=f"{signer.key_id:08x}.pem",
        encrypted=bool(passphrase),
        created_at=_now(),
    )
    _write_private(directory / info.file, pem)
    _write_manifest(directory, [*keys, info])
    return info


def _load(directory: Path, key: KeyInfo, passphrase: str | None) -> NoteSigner:
    path = directory / key.file
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigurationError(f"cannot read signing key {path}: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"signing key {path} is readable or writable by others (mode {stat.S_IMODE(mode):04o}): "
            f"refusing to use it; run `chmod 600 {path}`"
        )
    password: bytes | None = None
    if key.encrypted:
        if not passphrase:
            raise ConfigurationError(f"signing key {path} is encrypted: set QERBEROS_KEY_PASSPHRASE")
        password = passphrase.encode("utf-8")
    elif passphrase:
        logger.warning("signing key %s is stored unencrypted although a passphrase is set", path)
    try:
        private = load_pem_private_key(path.read_bytes(), password)
    except OSError as exc:
        raise ConfigurationError(f"cannot read signing key {path}: {exc.strerror}") from exc
    except (ValueError, TypeError) as exc:
        hint = "wrong passphrase or damaged file" if key.encrypted else "damaged file"
        raise ConfigurationError(f"cannot load signing key {path} ({hint})") from exc
    except Exception as exc:  # cryptography's UnsupportedAlgorithm and the like
        raise ConfigurationError(f"cannot load signing key {path}: {type(exc).__name__}") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise ConfigurationError(f"signing key {path} is not an Ed25519 key")
    signer = NoteSigner(key.name, private)
    if signer.public_key != key.public_key or signer.key_id != key.key_id:
        raise ConfigurationError(f"signing key {path} does not match the public key listed in {_MANIFEST}")
    return signer


def _read_manifest(directory: Path) -> list[KeyInfo]:
    path = directory / _MANIFEST
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the key manifest {path}: {exc}") from exc
    try:
        if document["format"] != _FORMAT:
            raise ConfigurationError(f"key manifest {path} has format {document['format']!r}, expected {_FORMAT}")
        return [_key_from_json(entry) for entry in document["keys"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"key manifest {path} is damaged: {exc!r}") from exc


def _key_from_json(entry: dict[str, Any]) -> KeyInfo:
    info = KeyInfo(
        name=str(entry["name"]),
        key_id=_parse_key_id(entry["key_id"]),
        public_key=base64.b64decode(entry["public_key"], validate=True),
        file=str(entry["file"]),
        encrypted=bool(entry["encrypted"]),
        created_at=str(entry["created_at"]),
        retired_at=None if entry.get("retired_at") is None else str(entry["retired_at"]),
    )
    if len(info.public_key) != 32 or key_id(info.name, info.public_key) != info.key_id:
        raise ValueError(f"key {entry['key_id']} does not match its public key")
    if Path(info.file).name != info.file:
        raise ValueError(f"key file {info.file!r} is not a plain file name")
    return info


def _write_manifest(directory: Path, keys: list[KeyInfo]) -> None:
    document = {
        "format": _FORMAT,
        "keys": [
            {
                "name": key.name,
                "key_id": key.key_id_hex,
                "public_key": base64.b64encode(key.public_key).decode("ascii"),
                "verifier_key": key.verifier_key,
                "file": key.file,
                "encrypted": key.encrypted,
                "created_at": key.created_at,
                "retired_at": key.retired_at,
            }
            for key in keys
        ],
    }
    write_atomically(directory / _MANIFEST, (json.dumps(document, indent=2) + "\n").encode("utf-8"), 0o644)


def _write_private(path: Path, pem: bytes) -> None:
    write_atomically(path, pem, 0o600)


def _parse_key_id(text: object) -> int:
    if not isinstance(text, str) or len(text) != 8 or any(c not in "0123456789abcdef" for c in text):
        raise ConfigurationError(f"a key id is 8 lowercase hex digits, got {text!r}")
    return int(text, 16)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
