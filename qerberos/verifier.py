"""The stand-alone verifier an auditor runs against a qerberos log.

It imports nothing from qerberos: only the standard library (and, for signed notes, ``cryptography``),
so it can be read and checked in one sitting. The Merkle tree is exactly RFC 9162 section 2.1:

- ``leaf_hash(d) = SHA-256(0x00 || d)``, ``node_hash(l, r) = SHA-256(0x01 || l || r)``;
- the root of the empty tree is ``SHA-256("")``;
- inclusion proofs are checked with the algorithm of RFC 9162 section 2.1.3.2, consistency proofs with the
  one of section 2.1.4.2.

Every check fails closed: any input that is not exactly what it should be (a hash that is not 32 bytes, an
index outside the tree, a proof element too many or too few, a value of the wrong type) raises
``VerificationError`` with the reason, never another exception and never a silent success.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "BundleReport",
    "CompactRange",
    "SubjectReport",
    "VerificationError",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "verify_bundle",
    "verify_consistency",
    "verify_inclusion",
    "verify_subject_bundle",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_MAX_SIZE = 2**64 - 1  # tree sizes and indices are uint64 in RFC 9162


class VerificationError(Exception):
    """The thing checked does not verify; the message (also ``reason``) says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- hashing (RFC 9162 section 2.1.1) ---------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """The hash of a leaf: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class CompactRange:
    """The roots of the perfect subtrees covering the leaves appended so far, largest first.

    That is the binary decomposition of the count: appending leaf ``i`` merges one subtree per trailing
    1-bit of ``i``. ``root()`` folds the subtrees right to left, which is exactly MTH's split at the
    largest power of two smaller than n. Linear time over all appends, O(log n) memory.
    """

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[bytes] = []

    def append(self, leaf: bytes) -> None:
        n = self.size
        while n & 1:
            leaf = hashlib.sha256(b"\x01" + self._stack.pop() + leaf).digest()
            n >>= 1
        self._stack.append(leaf)
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        root = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            root = hashlib.sha256(b"\x01" + left + root).digest()
        return root


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over the given leaf hashes, in linear time and constant stack depth."""
    tree = CompactRange()
    for i, h in enumerate(hashes):
        _check_hash(f"leaf hash {i}", h)
        tree.append(h)
    return tree.root()


# --- inclusion (RFC 9162 section 2.1.3.2) -------------------------------------------------------------


def verify_inclusion(leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` is leaf ``leaf_index`` of the tree of ``tree_size`` leaves with ``root``."""
    _check_size("leaf index", leaf_index)
    _check_size("tree size", tree_size)
    _check_hash("leaf hash", leaf_hash)
    _check_hash("root", root)
    path = _check_proof(proof)
    if leaf_index >= tree_size:
        raise VerificationError(f"leaf index {leaf_index} is not below tree size {tree_size}")

    fn, sn = leaf_index, tree_size - 1
    r = bytes(leaf_hash)
    for p in path:
        if sn == 0:
            raise VerificationError("inclusion proof has more elements than the tree has levels")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion proof has fewer elements than the tree has levels")
    if r != root:
        raise VerificationError("inclusion proof does not lead to the root")


# --- consistency (RFC 9162 section 2.1.4.2) -----------------------------------------------------------


def verify_consistency(
    first_size: int, second_size: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``first_size`` leaves is a prefix of the tree of ``second_size`` leaves.

    RFC 9162 defines consistency proofs for ``0 < first_size < second_size``. Outside that range:
    equal sizes are consistent exactly when the proof is empty and the roots are equal, and a first size
    of 0 is refused (every tree extends the empty tree, so such a "proof" proves nothing).
    """
    _check_size("first size", first_size)
    _check_size("second size", second_size)
    _check_hash("first root", first_root)
    _check_hash("second root", second_root)
    path = _check_proof(proof)
    if second_size < first_size:
        raise VerificationError(f"second size {second_size} is smaller than first size {first_size}")
    if first_size == 0:
        raise VerificationError("consistency with the empty tree proves nothing")
    if first_size == second_size:
        if path:
            raise VerificationError("equal tree sizes need an empty consistency proof")
        if first_root != second_root:
            raise VerificationError("equal tree sizes but different roots")
        return

    if not path:
        raise VerificationError("consistency proof is empty")
    if first_size & (first_size - 1) == 0:  # an exact power of 2: the old root is itself a node
        path = [bytes(first_root), *path]
    fn, sn = first_size - 1, second_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof has more elements than the trees need")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("consistency proof has fewer elements than the trees need")
    if fr != first_root:
        raise VerificationError("consistency proof does not lead to the first root")
    if sr != second_root:
        raise VerificationError("consistency proof does not lead to the second root")


# --- input checks (fail closed) -----------------------------------------------------------------------


def _check_size(name: str, value: object) -> None:
    if type(value) is not int or not 0 <= value <= _MAX_SIZE:
        raise VerificationError(f"{name} must be an integer in [0, 2^64): got {value!r}")


def _check_hash(name: str, value: object) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise VerificationError(f"{name} must be {HASH_SIZE} bytes")


def _check_proof(proof: object) -> list[bytes]:
    if isinstance(proof, bytes | bytearray | str) or not isinstance(proof, Sequence):
        raise VerificationError("proof must be a sequence of hashes")
    path: list[bytes] = []
    for i, p in enumerate(proof):
        _check_hash(f"proof element {i}", p)
        path.append(bytes(p))
    return path


# ======================================================================================================
# Signed notes and checkpoints (C2SP signed-note v1 with Ed25519, C2SP tlog-checkpoint)
#
# A signed note is a text ending in a newline, a blank line, then one line per signature:
#     "— <key name> <base64(4-byte big-endian key id || 64-byte Ed25519 signature)>\n"
# (an em dash U+2014 and a space first). The signature covers the text, final newline included. A key is
# named by its verifier key "<name>+<8 hex key id>+<base64(0x01 || 32-byte public key)>", where
#     key id = SHA-256(name || 0x0A || 0x01 || public key)[:4].
# A checkpoint is a note whose text is "<origin>\n<tree size>\n<base64 root hash>\n" plus optional
# extension lines.
#
# Verification follows the spec and fails closed: signatures by keys not trusted are ignored, a signature
# by a trusted key must verify (else the whole note is rejected) and at least one must. Stricter than Go's
# golang.org/x/mod/sumdb/note, which silently skips them: two signature lines for the same key are refused.
# ======================================================================================================


__all__ += [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "Checkpoint",
    "NoteProblem",
    "NoteSignature",
    "NoteVerificationError",
    "SignedNote",
    "VerifierKey",
    "decode_base64",
    "is_valid_key_name",
    "key_id",
    "parse_checkpoint",
    "parse_note",
    "parse_verifier_key",
    "verify_checkpoint",
    "verify_note",
]

ALG_ED25519 = 0x01
MAX_SIGNATURES = 100  # the spec asks for a limit of at least 16; Go's note package uses 100
ED25519_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_TREE_SIZE = re.compile(r"0|[1-9][0-9]*", re.ASCII)
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")

NoteProblem = Literal[
    "malformed-key",  # a verifier key string is not name+keyid+base64(0x01||key) with a matching id
    "ambiguous-key",  # two different trusted keys share a name and key id
    "malformed-note",  # not a signed note (encoding, control characters, layout, a bad signature line)
    "too-many-signatures",
    "duplicate-signature",  # two signature lines for one (key name, key id)
    "invalid-signature",  # a trusted key's signature does not verify
    "untrusted",  # no signature by a trusted key (by one named as the origin, for checkpoints)
    "malformed-checkpoint",  # the note text is not a tlog-checkpoint body
    "wrong-origin",  # the checkpoint is for another log
    "quorum",  # fewer witnesses cosigned than the policy asks
]


class NoteVerificationError(VerificationError):
    """A signed note or checkpoint does not verify: ``problem`` names the kind, ``reason`` the detail."""

    def __init__(self, problem: NoteProblem, reason: str) -> None:
        super().__init__(reason)
        self.problem: NoteProblem = problem


@dataclasses.dataclass(frozen=True, slots=True)
class VerifierKey:
    """A public note key: its name, its 32-bit key id, the 32-byte Ed25519 public key and what it signs
    (``algorithm``: 0x01 notes, 0x04 cosignatures)."""

    name: str
    key_id: int
    public_key: bytes
    algorithm: int = ALG_ED25519


@dataclasses.dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: the key's name and id, and the raw Ed25519 signature (64 bytes)."""

    name: str
    key_id: int
    signature: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class SignedNote:
    """A note's text (ending in a newline) and its signatures, in the order of their lines."""

    text: str
    signatures: tuple[NoteSignature, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tlog-checkpoint body: the log's origin, its tree size and its RFC 9162 root hash."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()


def is_valid_key_name(name: object) -> bool:
    """Key names are non-empty and contain neither Unicode spaces nor '+' (nor control characters)."""
    return (
        isinstance(name, str)
        and name != ""
        and not any(c.isspace() or c == "+" or c < " " for c in name)
        and _is_utf8(name)
    )


def key_id(name: str, public_key: bytes, algorithm: int = ALG_ED25519) -> int:
    """The key id: the first 4 bytes, big-endian, of SHA-256(name || 0x0A || algorithm || public key), where
    the algorithm is 0x01 for Ed25519 note signatures, 0x04 for Ed25519 cosignature/v1."""
    if len(public_key) != ED25519_KEY_SIZE:
        raise NoteVerificationError("malformed-key", f"an Ed25519 public key is {ED25519_KEY_SIZE} bytes")
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([algorithm]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def parse_verifier_key(vkey: str, algorithm: int = ALG_ED25519) -> VerifierKey:
    """Parse ``name+<8 hex key id>+base64(algorithm || public key)`` (Go's ``note.NewVerifier`` format); the
    algorithm byte must be ``algorithm``: 0x01 for a log's key, 0x04 for a witness's (``cosigner_key``)."""
    if not isinstance(vkey, str):
        raise NoteVerificationError("malformed-key", "a verifier key is a string")
    name, _, rest = vkey.partition("+")
    id_hex, _, key64 = rest.partition("+")
    if not is_valid_key_name(name):
        raise NoteVerificationError("malformed-key", f"verifier key has an invalid name: {vkey!r}")
    if not _KEY_ID_HEX.fullmatch(id_hex):
        raise NoteVerificationError("malformed-key", f"verifier key id is not 8 lowercase hex digits: {vkey!r}")
    raw = decode_base64(key64)
    if raw is None or len(raw) != 1 + ED25519_KEY_SIZE:
        raise NoteVerificationError("malformed-key", f"verifier key data is not an Ed25519 key: {vkey!r}")
    if raw[0] != algorithm:
        raise NoteVerificationError("malformed-key", f"verifier key algorithm {raw[0]} is not {algorithm}")
    public_key = raw[1:]
    if int(id_hex, 16) != key_id(name, public_key, algorithm):
        raise NoteVerificationError("malformed-key", f"verifier key id does not match its key: {vkey!r}")
    return VerifierKey(name, int(id_hex, 16), public_key, algorithm)


def parse_note(note: str | bytes) -> SignedNote:
    """Split a signed note into its text and signature lines, checking only the syntax (no trust)."""
    text = _decode_note(note)
    split = text.rfind("\n\n")
    if split < 0:
        raise NoteVerificationError("malformed-note", "no blank line before the signatures")
    body, block = text[: split + 1], text[split + 2 :]
    if not block or not block.endswith("\n"):
        raise NoteVerificationError("malformed-note", "the signature block is empty or lacks its final newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteVerificationError("too-many-signatures", f"{len(lines)} signatures, at most {MAX_SIGNATURES}")
    signatures: list[NoteSignature] = []
    seen: set[tuple[str, int]] = set()
    for number, line in enumerate(lines, 1):
        signature = _parse_signature_line(number, line)
        if (signature.name, signature.key_id) in seen:
            raise NoteVerificationError(
                "duplicate-signature", f"two signatures by {signature.name}+{signature.key_id:08x}"
            )
        seen.add((signature.name, signature.key_id))
        signatures.append(signature)
    return SignedNote(body, tuple(signatures))


def verify_note(note: str | bytes, trusted: Iterable[str | VerifierKey]) -> SignedNote:
    """Verify a signed note against the trusted keys; return its text with the signatures that verified.

    Signatures by other keys are ignored (this is how keys rotate and witnesses cosign). A signature by a
    trusted key (same name and key id) that does not verify rejects the note, and so does a note that no
    trusted key signed.
    """
    keys = _trusted_keys(trusted)
    parsed = parse_note(note)
    message = parsed.text.encode("utf-8")
    verified: list[NoteSignature] = []
    for signature in parsed.signatures:
        key = keys.get((signature.name, signature.key_id))
        if key is None:
            continue
        if not _ed25519_verify(key.public_key, signature.signature, message):
            raise NoteVerificationError(
                "invalid-signature", f"the signature by {key.name}+{key.key_id:08x} does not verify"
            )
        verified.append(signature)
    if not verified:
        raise NoteVerificationError("untrusted", "no signature by a trusted key")
    return SignedNote(parsed.text, tuple(verified))


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a tlog-checkpoint body strictly: origin, tree size (no leading zeros), 32-byte root, extensions."""
    if not isinstance(text, str) or not text.endswith("\n"):
        raise NoteVerificationError("malformed-checkpoint", "a checkpoint body ends in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteVerificationError("malformed-checkpoint", "a checkpoint body has at least three lines")
    origin, size_text, root_text, *extensions = lines
    if not origin:
        raise NoteVerificationError("malformed-checkpoint", "the origin line is empty")
    if not _TREE_SIZE.fullmatch(size_text) or int(size_text) > _MAX_SIZE:
        raise NoteVerificationError("malformed-checkpoint", f"bad tree size line {size_text!r}")
    root = decode_base64(root_text)
    if root is None or len(root) != HASH_SIZE:
        raise NoteVerificationError("malformed-checkpoint", f"the root hash is not base64 of {HASH_SIZE} bytes")
    if any(not line for line in extensions):
        raise NoteVerificationError("malformed-checkpoint", "an extension line is empty")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def verify_checkpoint(note: str | bytes, trusted: Iterable[str | VerifierKey], origin: str) -> Checkpoint:
    """Verify a signed checkpoint of the log ``origin`` and return it.

    Besides ``verify_note``: the body must be a checkpoint of ``origin``, and one of the signatures that
    verified must be by a key named ``origin`` (the log's own key), so one log's key cannot vouch for another.
    """
    opened = verify_note(note, trusted)
    checkpoint = parse_checkpoint(opened.text)
    if checkpoint.origin != origin:
        raise NoteVerificationError("wrong-origin", f"checkpoint of {checkpoint.origin!r}, expected {origin!r}")
    if not any(signature.name == origin for signature in opened.signatures):
        raise NoteVerificationError("untrusted", f"no signature by a trusted key named {origin!r}")
    return checkpoint


def _decode_note(note: object) -> str:
    if isinstance(note, bytes | bytearray):
        try:
            text = bytes(note).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteVerificationError("malformed-note", f"not valid UTF-8 (byte {exc.start})") from None
    elif isinstance(note, str):
        if not _is_utf8(note):
            raise NoteVerificationError("malformed-note", "not valid UTF-8 (lone surrogate)")
        text = note
    else:
        raise NoteVerificationError("malformed-note", "a signed note is text or bytes")
    control = _CONTROL.search(text)
    if control:
        raise NoteVerificationError(
            "malformed-note", f"control character U+{ord(control.group()):04X} at offset {control.start()}"
        )
    return text


def _parse_signature_line(number: int, line: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteVerificationError("malformed-note", f"signature line {number} does not start with '— '")
    name, _, sig64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
    raw = decode_base64(sig64)
    if not is_valid_key_name(name) or raw is None or len(raw) < 5:
        raise NoteVerificationError("malformed-note", f"signature line {number} is not '— <name> <base64>'")
    return NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:])


def _trusted_keys(
    trusted: Iterable[str | VerifierKey], algorithm: int = ALG_ED25519
) -> dict[tuple[str, int], VerifierKey]:
    """Keys by (name, key id), all of ``algorithm``: a log's keys (0x01) or witnesses' (0x04), never mixed."""
    if isinstance(trusted, str | bytes):
        raise NoteVerificationError("malformed-key", "trusted keys are a collection of verifier keys")
    keys: dict[tuple[str, int], VerifierKey] = {}
    for item in trusted:
        key = item if isinstance(item, VerifierKey) else parse_verifier_key(item, algorithm)
        if key.algorithm != algorithm:
            raise NoteVerificationError(
                "malformed-key", f"key {key.name} is of algorithm {key.algorithm}, not {algorithm}"
            )
        if key_id(key.name, key.public_key, algorithm) != key.key_id:
            raise NoteVerificationError("malformed-key", f"key id of {key.name} does not match its key")
        known = keys.setdefault((key.name, key.key_id), key)
        if known.public_key != key.public_key:
            raise NoteVerificationError("ambiguous-key", f"two trusted keys are {key.name}+{key.key_id:08x}")
    return keys


def decode_base64(text: str) -> bytes | None:
    """Strict standard base64 (RFC 4648 section 4): the canonical encoding only, else None (the base64 of
    signed notes, checkpoints and tlog-witness proof lines)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == text else None


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@functools.lru_cache(maxsize=64)
def _ed25519_key(public_key: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(public_key)


def _ed25519_verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    if len(signature) != ED25519_SIGNATURE_SIZE:
        return False
    try:
        _ed25519_key(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


# ======================================================================================================
# Cosignatures (C2SP tlog-cosignature, Ed25519 cosignature/v1) and a witness policy of k of n
#
# A witness states that a checkpoint is consistent with every one it saw of the log by adding a note
# signature line to it. Its key id is SHA-256(name || 0x0A || 0x04 || public key)[:4] and the signature is a
# ``timestamped_signature``: the time as a big-endian u64 (POSIX seconds, below 2^63), then the Ed25519
# signature over "cosignature/v1\n" "time <timestamp>\n" and the checkpoint's note text. The log's own
# signature is checked as always; lines by keys that are neither the log's nor a given witness's are ignored.
# ======================================================================================================


__all__ += [
    "ALG_COSIGNATURE_V1",
    "Cosignature",
    "cosigned_message",
    "verify_cosignatures",
    "verify_witnessed_checkpoint",
]

ALG_COSIGNATURE_V1 = 0x04
_COSIGNATURE_HEADER = "cosignature/v1\n"
_TIMESTAMP_SIZE = 8
_MAX_TIMESTAMP = 2**63 - 1


@dataclasses.dataclass(frozen=True, slots=True)
class Cosignature:
    """A cosignature that verified: the witness's key name and id, and when it cosigned (POSIX seconds)."""

    name: str
    key_id: int
    timestamp: int


def cosigned_message(text: str, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: the header line, the time line, then the checkpoint's note text."""
    return f"{_COSIGNATURE_HEADER}time {timestamp}\n{text}".encode()


def verify_cosignatures(note: str | bytes, witness_keys: Iterable[str | VerifierKey], quorum: int) -> list[Cosignature]:
    """The cosignatures of ``note`` by the witnesses (cosignature/v1 verifier keys) that verify; at least
    ``quorum`` distinct witnesses of them must have cosigned (a policy of ``quorum`` of ``len(witness_keys)``).

    A line by a given witness that does not verify rejects the note, as a log's signature would.
    """
    keys = _trusted_keys(witness_keys, ALG_COSIGNATURE_V1)
    if type(quorum) is not int or not 0 <= quorum <= len(keys):
        raise NoteVerificationError("quorum", f"a policy of {quorum!r} of {len(keys)} witnesses cannot be met")
    parsed = parse_note(note)
    valid: list[Cosignature] = []
    for signature in parsed.signatures:
        key = keys.get((signature.name, signature.key_id))
        if key is None:
            continue
        stamp, raw = signature.signature[:_TIMESTAMP_SIZE], signature.signature[_TIMESTAMP_SIZE:]
        timestamp = int.from_bytes(stamp, "big")
        message = cosigned_message(parsed.text, timestamp)
        if (
            len(stamp) != _TIMESTAMP_SIZE
            or timestamp > _MAX_TIMESTAMP
            or not _ed25519_verify(key.public_key, raw, message)
        ):
            raise NoteVerificationError(
                "invalid-signature", f"the cosignature by {key.name}+{key.key_id:08x} does not verify"
            )
        valid.append(Cosignature(key.name, key.key_id, timestamp))
    if len(valid) < quorum:
        raise NoteVerificationError("quorum", f"{len(valid)} of the {len(keys)} witnesses cosigned, {quorum} needed")
    return valid


def verify_witnessed_checkpoint(
    note: str | bytes,
    log_keys: Iterable[str | VerifierKey],
    origin: str,
    witness_keys: Iterable[str | VerifierKey],
    quorum: int,
) -> Checkpoint:
    """``verify_checkpoint``, and at least ``quorum`` of the witnesses cosigned it."""
    checkpoint = verify_checkpoint(note, log_keys, origin)
    verify_cosignatures(note, witness_keys, quorum)
    return checkpoint


# ======================================================================================================
# Bundles written by ``qerberos export`` (checked by ``qerberos verify --bundle DIR``)
#
# ``keys.txt`` holds the verifier keys, ``manifest.json`` the log's origin, ``checkpoints.jsonl`` the signed
# checkpoints its database stores ({"size", "note"}), ``checkpoint-history.jsonl`` those of the signer's
# history outside the database (the same shape), ``records.jsonl`` one record per line in sequence order:
# {"canonical": the RFC 8785 record, "leafHash", "chainHash" (base64), "details" (the canonical details text,
# or null once erased), "salt" (base64 or null)}. The checks: every checkpoint, of the database, of the
# history or one the auditor trusts, is signed by a trusted key named as the origin, and two of one size
# agree; record i says "seq": i; its leaf hash is SHA-256(0x00 || canonical); the chain is
# SHA-256(previous || leaf) from 32 zero bytes; present details hash, with their salt, to the record's
# "detailsCommitment"; the Merkle root at each checkpoint's size is the one it signs (for the auditor's
# checkpoints: the records are a consistent extension of each, the first bad size named); no checkpoint
# covers more records than the bundle holds; and the newest checkpoint of the database covers every record.
# ======================================================================================================


@dataclasses.dataclass(frozen=True)
class BundleReport:
    size: int
    checkpoints: int
    origin: str


def verify_bundle(directory: str | Path, trusted_checkpoints: Sequence[str] = ()) -> BundleReport:
    """Check an exported bundle; raise ``VerificationError`` naming the first record or size that fails.

    ``trusted_checkpoints`` are signed checkpoints the auditor kept: the bundle's records must extend each
    (the root of the records at its size is its root), or the truncation or rewrite behind it is named.
    A bundle that cannot be read at all raises ``OSError``; one whose content is malformed (a line that is
    not a JSON object, a field missing or of the wrong type) fails verification like any other change.
    """
    directory = Path(directory)
    manifest = _json_object("manifest.json", (directory / "manifest.json").read_text(encoding="utf-8"))
    origin = _text("manifest.json", manifest, "origin")
    trusted = [line for line in (directory / "keys.txt").read_text(encoding="utf-8").splitlines() if line]
    stored = _bundle_checkpoints(directory / "checkpoints.jsonl", trusted, origin, {})
    if not stored:
        raise VerificationError("the bundle has no signed checkpoint")
    checkpoints = _bundle_checkpoints(directory / "checkpoint-history.jsonl", trusted, origin, dict(stored))
    for number, note in enumerate(trusted_checkpoints, 1):
        _add_checkpoint(checkpoints, verify_checkpoint(note, trusted, origin), f"trusted checkpoint {number}")
    tree = CompactRange()
    chain = bytes(HASH_SIZE)
    _check_bundle_root(checkpoints, tree)
    with (directory / "records.jsonl").open(encoding="utf-8") as lines:
        for seq, line in enumerate(lines):
            leaf, chain = _check_bundle_record(seq, _json_object(f"record {seq}", line), chain)
            tree.append(leaf)
            _check_bundle_root(checkpoints, tree)
    beyond = [size for size in checkpoints if size > tree.size]
    if beyond:
        raise VerificationError(
            f"truncated: a signed checkpoint covers {min(beyond)} records, the bundle holds {tree.size}"
        )
    if tree.size != max(stored):
        raise VerificationError(f"the newest checkpoint covers {max(stored)} records, the bundle holds {tree.size}")
    return BundleReport(tree.size, len(stored), origin)


@dataclasses.dataclass(frozen=True)
class SubjectReport:
    subject: str
    events: int
    tree_size: int
    origin: str


def verify_subject_bundle(directory: str | Path, trusted_keys: Sequence[str] = ()) -> SubjectReport:
    """Check one data subject's bundle (``qerberos report subject``): the checkpoint's signature (with
    ``trusted_keys`` when given, else the bundle's ``keys.txt``), each event's inclusion proof up to the
    checkpoint's root, its details against their commitment, and that each event is the subject's own.
    Raise ``VerificationError`` naming the first event that fails."""
    directory = Path(directory)
    manifest = _json_object("manifest.json", (directory / "manifest.json").read_text(encoding="utf-8"))
    origin, subject = _text("manifest.json", manifest, "origin"), _text("manifest.json", manifest, "subject")
    keys = list(trusted_keys) or [
        line for line in (directory / "keys.txt").read_text(encoding="utf-8").splitlines() if line
    ]
    checkpoint = verify_checkpoint((directory / "checkpoint.txt").read_text(encoding="utf-8"), keys, origin)
    events = 0
    with (directory / "records.jsonl").open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            record = _json_object(f"event {number}", line)
            seq = record.get("seq")
            if not isinstance(seq, int) or isinstance(seq, bool):
                raise VerificationError(f"event {number}: no sequence number")
            where = f"event at seq {seq}"
            canonical = _text(where, record, "canonical").encode()
            fields = _json_object(f"{where}: canonical", canonical)
            actor = fields.get("actor")
            if fields.get("seq") != seq or not isinstance(actor, dict) or actor.get("squidId") != subject:
                raise VerificationError(f"{where}: not an event of {subject} at that position")
            proof = record.get("proof")
            proof_nodes: list[object] = proof if isinstance(proof, list) else []
            nodes = [decode_base64(node) if isinstance(node, str) else None for node in proof_nodes]
            if not isinstance(proof, list) or any(node is None for node in nodes):
                raise VerificationError(f"{where}: the inclusion proof is not a list of base64 nodes")
            verify_inclusion(seq, checkpoint.size, leaf_hash(canonical), nodes, checkpoint.root_hash)  # type: ignore[arg-type]
            _check_details(where, record, fields)
            events += 1
    return SubjectReport(subject, events, checkpoint.size, origin)


def _check_details(where: str, record: dict[str, object], fields: dict[str, object]) -> None:
    """Details that are there must match the record's commitment (erased ones are simply absent)."""
    if record.get("details") is None:
        return
    details = _text(where, record, "details")
    salt = decode_base64(_text(where, record, "salt"))
    if salt is None:
        raise VerificationError(f"{where}: salt is not base64")
    digest = hashlib.sha256(salt + details.encode()).hexdigest()
    if fields.get("detailsCommitment") != f"sha256:{digest}":
        raise VerificationError(f"{where}: details do not match their commitment")


def _bundle_checkpoints(
    path: Path, trusted: Sequence[str], origin: str, checkpoints: dict[int, bytes]
) -> dict[int, bytes]:
    """``checkpoints`` with the verified checkpoints of a ``{"size", "note"}`` JSON lines file added."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            where = f"{path.name} line {number}"
            note = _text(where, _json_object(where, line), "note")
            _add_checkpoint(checkpoints, verify_checkpoint(note, trusted, origin), where)
    return checkpoints


def _add_checkpoint(checkpoints: dict[int, bytes], checkpoint: Checkpoint, where: str) -> None:
    if checkpoints.setdefault(checkpoint.size, checkpoint.root_hash) != checkpoint.root_hash:
        raise VerificationError(
            f"{where}: another signed checkpoint of size {checkpoint.size} has a different root: a fork"
        )


def _check_bundle_record(seq: int, record: dict[str, object], chain: bytes) -> tuple[bytes, bytes]:
    """Check record ``seq`` after the record whose chain hash is ``chain``; its leaf hash and chain hash."""
    where = f"record {seq}"
    canonical = _text(where, record, "canonical").encode()
    fields = _json_object(f"{where}: canonical", canonical)
    if fields.get("seq") != seq:
        raise VerificationError(f"{where}: says seq {fields.get('seq')}")
    leaf = leaf_hash(canonical)
    if base64.b64encode(leaf).decode() != _text(where, record, "leafHash"):
        raise VerificationError(f"{where}: leaf hash does not match its canonical bytes")
    chain = hashlib.sha256(chain + leaf).digest()
    if base64.b64encode(chain).decode() != _text(where, record, "chainHash"):
        raise VerificationError(f"{where}: hash chain broken")
    _check_details(where, record, fields)
    return leaf, chain


def _json_object(where: str, text: str | bytes) -> dict[str, object]:
    try:
        value = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not UTF-8
        raise VerificationError(f"{where}: not valid JSON") from exc
    if not isinstance(value, dict):
        raise VerificationError(f"{where}: not a JSON object")
    return value


def _text(where: str, value: dict[str, object], name: str) -> str:
    """``value[name]``, which must be text that encodes as UTF-8 (JSON escapes can make lone surrogates)."""
    found = value.get(name)
    if not isinstance(found, str) or not _is_utf8(found):
        raise VerificationError(f"{where}: {name!r} is missing or not text")
    return found


def _check_bundle_root(checkpoints: dict[int, bytes], tree: CompactRange) -> None:
    expected = checkpoints.get(tree.size)
    if expected is not None and tree.root() != expected:
        raise VerificationError(
            f"checkpoint at size {tree.size}: root does not match the records (rewritten behind a signed checkpoint)"
        )
