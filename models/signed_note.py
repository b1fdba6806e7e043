"""Signed checkpoints: C2SP tlog-checkpoint bodies inside C2SP signed notes, signed with Ed25519.

Signing and formatting live here; parsing and verification live once, in the auditor's stand-alone
``qerberos.verifier``, and this module calls them (so the log and its auditors cannot disagree). Failures
from the verifier are re-raised as ``NoteIntegrityError`` (a ``qerberos.errors.IntegrityError``) with the
same ``problem`` code and reason.

Several keys may sign one note: during a key rotation the old and the new key both sign, so a verifier
that trusts either one accepts every checkpoint.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterable, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from qerberos import verifier
from qerberos.errors import IntegrityError, ValidationError
from qerberos.verifier import (
    ALG_ED25519,
    MAX_SIGNATURES,
    SIGNATURE_PREFIX,
    Checkpoint,
    NoteProblem,
    NoteSignature,
    SignedNote,
    VerifierKey,
    is_valid_key_name,
    key_id,
)

__all__ = [
    "Checkpoint",
    "NoteIntegrityError",
    "NoteProblem",
    "NoteSignature",
    "NoteSigner",
    "SignedNote",
    "VerifierKey",
    "checkpoint_of",
    "format_checkpoint",
    "format_note",
    "format_signature_line",
    "format_verifier_key",
    "key_id",
    "parse_checkpoint",
    "parse_note",
    "parse_verifier_key",
    "sign_checkpoint",
    "sign_note",
    "verify_checkpoint",
    "verify_note",
]


class NoteIntegrityError(IntegrityError):
    """A signed note or checkpoint does not verify; ``problem`` is the verifier's code for why."""

    def __init__(self, message: str, *, problem: NoteProblem) -> None:
        super().__init__(message, details={"problem": problem})
        self.problem: NoteProblem = problem


@dataclasses.dataclass(frozen=True, slots=True)
class NoteSigner:
    """An Ed25519 note key that can sign: its name (the log origin) and the private key."""

    name: str
    private_key: Ed25519PrivateKey = dataclasses.field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise ValidationError(f"invalid note key name {self.name!r}: non-empty, no spaces, no '+'")

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        return cls(name, Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> int:
        return key_id(self.name, self.public_key)

    @property
    def verifier_key(self) -> str:
        """The public key in signed-note form, ``name+<key id>+base64(0x01 || public key)``."""
        return format_verifier_key(self.name, self.public_key)

    def sign(self, text: str) -> NoteSignature:
        return NoteSignature(self.name, self.key_id, self.private_key.sign(text.encode("utf-8")))


def format_verifier_key(name: str, public_key: bytes, algorithm: int = ALG_ED25519) -> str:
    """``name+<8 hex key id>+base64(algorithm || public key)``, as Go's ``note.NewEd25519VerifierKey``."""
    if not is_valid_key_name(name) or len(public_key) != verifier.ED25519_KEY_SIZE:
        raise ValidationError(f"cannot make a verifier key of name {name!r} and a {len(public_key)}-byte key")
    encoded = base64.b64encode(bytes([algorithm]) + public_key).decode("ascii")
    return f"{name}+{key_id(name, public_key, algorithm):08x}+{encoded}"


def format_note(note: SignedNote) -> str:
    """The wire form: text, a blank line, one ``— <name> <base64(key id || signature)>`` line per signature."""
    return f"{note.text}\n{''.join(format_signature_line(signature) for signature in note.signatures)}"


def format_signature_line(signature: NoteSignature) -> str:
    """``— <name> <base64(4-byte key id || signature)>`` and its newline."""
    encoded = base64.b64encode(signature.key_id.to_bytes(4, "big") + signature.signature).decode("ascii")
    return f"{SIGNATURE_PREFIX}{signature.name} {encoded}\n"


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """Sign ``text`` (ending in a newline) with every signer; the result always parses back to itself."""
    if not signers:
        raise ValidationError("a signed note needs at least one signer")
    if len(signers) > MAX_SIGNATURES:
        raise ValidationError(f"at most {MAX_SIGNATURES} signers")
    if not text.endswith("\n"):
        raise ValidationError("a note's text ends in a newline")
    note = SignedNote(text, tuple(signer.sign(text) for signer in signers))
    encoded = format_note(note)
    try:
        reparsed = verifier.parse_note(encoded)
    except verifier.NoteVerificationError as exc:
        raise ValidationError(
            f"cannot sign this text as a note: {exc.reason}", details={"problem": exc.problem}
        ) from exc
    if reparsed != note:
        raise ValidationError("cannot sign this text as a note: it would not parse back to itself")
    return encoded


def format_checkpoint(checkpoint: Checkpoint) -> str:
    """The tlog-checkpoint body: origin, tree size, base64 root hash, extension lines, each ending in \\n."""
    encoded = "".join(
        f"{line}\n"
        for line in (
            checkpoint.origin,
            str(checkpoint.size),
            base64.b64encode(checkpoint.root_hash).decode("ascii"),
            *checkpoint.extensions,
        )
    )
    try:
        reparsed = verifier.parse_checkpoint(encoded)
    except verifier.NoteVerificationError as exc:
        raise ValidationError(f"not a valid checkpoint: {exc.reason}") from exc
    if reparsed != checkpoint:
        raise ValidationError("not a valid checkpoint: it would not parse back to itself")
    return encoded


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[NoteSigner]) -> str:
    """The signed note of ``checkpoint``; signer names should be the origin (the log's key name)."""
    return sign_note(format_checkpoint(checkpoint), signers)


def parse_verifier_key(vkey: str) -> VerifierKey:
    try:
        return verifier.parse_verifier_key(vkey)
    except verifier.NoteVerificationError as exc:
        raise ValidationError(exc.reason, details={"problem": exc.problem}) from exc


def parse_note(note: str | bytes) -> SignedNote:
    """The syntax of a signed note only; trust nothing in it before ``verify_note``."""
    try:
        return verifier.parse_note(note)
    except verifier.NoteVerificationError as exc:
        raise NoteIntegrityError(exc.reason, problem=exc.problem) from exc


def parse_checkpoint(text: str) -> Checkpoint:
    try:
        return verifier.parse_checkpoint(text)
    except verifier.NoteVerificationError as exc:
        raise NoteIntegrityError(exc.reason, problem=exc.problem) from exc


def checkpoint_of(note: str | bytes) -> Checkpoint:
    """The checkpoint a signed note carries, by its syntax alone: for notes whose signature was checked
    when they were made (the signer's own), never for one that arrived from outside."""
    return parse_checkpoint(parse_note(note).text)


def verify_note(note: str | bytes, verifier_keys: Iterable[str | VerifierKey]) -> SignedNote:
    """The note's text and the signatures by trusted keys; ``NoteIntegrityError`` when it does not verify."""
    try:
        return verifier.verify_note(note, verifier_keys)
    except verifier.NoteVerificationError as exc:
        raise NoteIntegrityError(exc.reason, problem=exc.problem) from exc


def verify_checkpoint(note_text: str | bytes, verifier_keys: Iterable[str | VerifierKey], origin: str) -> Checkpoint:
    """The checkpoint in ``note_text`` if a trusted key named ``origin`` signed it for the log ``origin``."""
    try:
        return verifier.verify_checkpoint(note_text, verifier_keys, origin)
    except verifier.NoteVerificationError as exc:
        raise NoteIntegrityError(exc.reason, problem=exc.problem) from exc
