"""The log's signing keys on disk: creation, permissions, passphrases, rotation and retirement."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from models import keys
from models.signed_note import Checkpoint, sign_checkpoint, verify_checkpoint
from qerberos.errors import ConfigurationError

ORIGIN = "qerberos.test/audit"
REPO = Path(__file__).resolve().parents[2]
ROOT = hashlib.sha256(b"root").digest()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ensure_key_creates_one_pkcs8_key_with_mode_0600(tmp_path: Path) -> None:
    created = keys.ensure_key(tmp_path, ORIGIN)
    pem = keys.keys_dir(tmp_path) / created.file
    assert mode(pem) == 0o600
    assert pem.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert (created.name, created.active, created.encrypted) == (ORIGIN, True, False)


def test_ensure_key_is_idempotent(tmp_path: Path) -> None:
    first = keys.ensure_key(tmp_path, ORIGIN)
    assert first == keys.ensure_key(tmp_path, ORIGIN)
    assert [first] == keys.list_keys(tmp_path)


def test_the_verifier_key_is_named_after_the_origin(tmp_path: Path) -> None:
    created = keys.ensure_key(tmp_path, ORIGIN)
    assert created.verifier_key.startswith(f"{ORIGIN}+{created.key_id:08x}+")
    (signer,) = keys.load_signers(tmp_path)
    assert created.verifier_key == signer.verifier_key


def test_a_loaded_key_signs_checkpoints_that_verify(tmp_path: Path) -> None:
    keys.ensure_key(tmp_path, ORIGIN)
    checkpoint = Checkpoint(ORIGIN, 3, ROOT)
    note = sign_checkpoint(checkpoint, keys.load_signers(tmp_path))
    assert checkpoint == verify_checkpoint(note, keys.verifier_keys(tmp_path), ORIGIN)


def test_an_encrypted_key_needs_its_passphrase(tmp_path: Path) -> None:
    created = keys.ensure_key(tmp_path, ORIGIN, "correct horse")
    pem = (keys.keys_dir(tmp_path) / created.file).read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert [created.key_id] == [s.key_id for s in keys.load_signers(tmp_path, "correct horse")]
    with pytest.raises(ConfigurationError, match="QERBEROS_KEY_PASSPHRASE"):
        keys.load_signers(tmp_path, None)
    with pytest.raises(ConfigurationError, match="wrong passphrase"):
        keys.load_signers(tmp_path, "battery staple")
    with pytest.raises(ConfigurationError, match="wrong passphrase"):
        keys.ensure_key(tmp_path, ORIGIN, "battery staple")


@pytest.mark.parametrize("unsafe", [0o644, 0o604, 0o640, 0o606])
def test_loading_refuses_a_private_key_others_can_read(tmp_path: Path, unsafe: int) -> None:
    created = keys.ensure_key(tmp_path, ORIGIN)
    pem = keys.keys_dir(tmp_path) / created.file
    pem.chmod(unsafe)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        keys.load_signers(tmp_path)
    pem.chmod(0o400)
    assert len(keys.load_signers(tmp_path)) == 1


def test_no_key_means_run_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="qerberos init"):
        keys.load_signers(tmp_path)
    assert keys.verifier_keys(tmp_path) == []


def test_rotation_signs_with_old_and_new_until_the_old_is_retired(tmp_path: Path) -> None:
    old = keys.ensure_key(tmp_path, ORIGIN)
    new = keys.rotate(tmp_path, ORIGIN)
    assert [old.key_id, new.key_id] == [s.key_id for s in keys.load_signers(tmp_path)]

    during = sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT), keys.load_signers(tmp_path))
    assert verify_checkpoint(during, [old.verifier_key], ORIGIN).size == 5  # a verifier not yet updated
    assert verify_checkpoint(during, [new.verifier_key], ORIGIN).size == 5  # an updated one

    retired = keys.retire(tmp_path, old.key_id_hex)
    assert not retired.active
    assert [new.key_id] == [s.key_id for s in keys.load_signers(tmp_path)]
    assert [old.verifier_key, new.verifier_key] == keys.verifier_keys(tmp_path)  # old checkpoints still verify
    assert [new.verifier_key] == keys.verifier_keys(tmp_path, include_retired=False)
    assert new == keys.ensure_key(tmp_path, ORIGIN)
    assert retired == keys.retire(tmp_path, old.key_id)  # idempotent


def test_the_last_active_key_cannot_be_retired(tmp_path: Path) -> None:
    only = keys.ensure_key(tmp_path, ORIGIN)
    with pytest.raises(ConfigurationError, match="last active key"):
        keys.retire(tmp_path, only.key_id)
    with pytest.raises(ConfigurationError, match="no key"):
        keys.retire(tmp_path, (only.key_id + 1) % 2**32)
    with pytest.raises(ConfigurationError, match="8 lowercase hex"):
        keys.retire(tmp_path, "nothex!!")


def test_rotate_needs_an_existing_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="qerberos init"):
        keys.rotate(tmp_path, ORIGIN)


def test_ensure_key_refuses_keys_of_another_origin(tmp_path: Path) -> None:
    keys.ensure_key(tmp_path, "other.log/audit")
    with pytest.raises(ConfigurationError, match="QERBEROS_LOG_ORIGIN"):
        keys.ensure_key(tmp_path, ORIGIN)


def test_an_invalid_origin_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot make a signing key"):
        keys.ensure_key(tmp_path, "has space")


def test_a_key_file_that_does_not_match_the_manifest_is_refused(tmp_path: Path) -> None:
    first = keys.ensure_key(tmp_path, ORIGIN)
    second = keys.rotate(tmp_path, ORIGIN)
    directory = keys.keys_dir(tmp_path)
    (directory / first.file).write_bytes((directory / second.file).read_bytes())
    with pytest.raises(ConfigurationError, match="does not match"):
        keys.load_signers(tmp_path)


def test_a_damaged_manifest_or_key_file_is_a_configuration_error(tmp_path: Path) -> None:
    created = keys.ensure_key(tmp_path, ORIGIN)
    directory = keys.keys_dir(tmp_path)
    (directory / created.file).write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigurationError, match="damaged file"):
        keys.load_signers(tmp_path)
    (directory / "keys.json").write_text("{not json")
    with pytest.raises(ConfigurationError, match="manifest"):
        keys.list_keys(tmp_path)
    (directory / "keys.json").write_text(json.dumps({"format": 1, "keys": [{"name": ORIGIN}]}))
    with pytest.raises(ConfigurationError, match="damaged"):
        keys.list_keys(tmp_path)


def test_a_missing_key_file_is_a_configuration_error(tmp_path: Path) -> None:
    created = keys.ensure_key(tmp_path, ORIGIN)
    (keys.keys_dir(tmp_path) / created.file).unlink()
    with pytest.raises(ConfigurationError, match="cannot read signing key"):
        keys.load_signers(tmp_path)


def test_concurrent_init_creates_one_key(tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from models import keys; "
        "print(keys.ensure_key(Path(sys.argv[1]), sys.argv[2]).key_id)"
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path), ORIGIN], cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    ids = {worker.communicate(timeout=60)[0].strip() for worker in workers}
    assert [worker.returncode for worker in workers] == [0] * 6
    assert 1 == len(ids) == len(keys.list_keys(tmp_path))
