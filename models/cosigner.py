"""A witness's key: Ed25519 cosignatures of checkpoints (C2SP tlog-cosignature, cosignature/v1).

The key id is SHA-256(name || 0x0A || 0x04 || public key)[:4]; a cosignature line carries the time as a
big-endian u64 and the Ed25519 signature over ``qerberos.verifier.cosigned_message`` (which verifies
them, so the witness and its verifiers cannot disagree). The key lives in one PKCS#8 PEM file, mode 0600,
encrypted when a passphrase is given.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from models import keys
from models.signed_note import format_signature_line, format_verifier_key
from qerberos.errors import ConfigurationError, ValidationError
from qerberos.verifier import ALG_COSIGNATURE_V1, NoteSignature, cosigned_message, is_valid_key_name, key_id

__all__ = ["Cosigner"]


@dataclasses.dataclass(frozen=True, slots=True)
class Cosigner:
    """A witness's name and its private key."""

    name: str
    private_key: Ed25519PrivateKey = dataclasses.field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise ValidationError(f"invalid witness name {self.name!r}: non-empty, no spaces, no '+'")

    @classmethod
    def generate(cls, name: str) -> Cosigner:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, name: str, path: Path, passphrase: str | None = None) -> Cosigner:
        try:
            private = load_pem_private_key(path.read_bytes(), passphrase.encode() if passphrase else None)
        except OSError as exc:
            raise ConfigurationError(f"cannot read the witness key {path}: {exc.strerror}") from exc
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"cannot load the witness key {path} (passphrase or damaged file)") from exc
        if not isinstance(private, Ed25519PrivateKey):
            raise ConfigurationError(f"the witness key {path} is not an Ed25519 key")
        return cls(name, private)

    def save(self, path: Path, passphrase: str | None = None) -> None:
        encryption = BestAvailableEncryption(passphrase.encode()) if passphrase else NoEncryption()
        keys.write_atomically(
            path, self.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption), 0o600
        )

    @property
    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> int:
        return key_id(self.name, self.public_key, ALG_COSIGNATURE_V1)

    @property
    def verifier_key(self) -> str:
        """``name+<key id>+base64(0x04 || public key)``: what a log or a verifier is configured with."""
        return format_verifier_key(self.name, self.public_key, ALG_COSIGNATURE_V1)

    def cosign(self, text: str, timestamp: int) -> str:
        """The cosignature line of a checkpoint's note text at ``timestamp`` (POSIX seconds, not 0)."""
        if not 0 < timestamp < 2**63:
            raise ValidationError(f"a cosignature's timestamp is a positive u64 below 2^63: got {timestamp}")
        signature = self.private_key.sign(cosigned_message(text, timestamp))
        return format_signature_line(NoteSignature(self.name, self.key_id, timestamp.to_bytes(8, "big") + signature))
