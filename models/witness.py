"""A witness (C2SP tlog-witness): it cosigns a log's checkpoints, never one inconsistent with the last it cosigned.

Anyone can host one with a key of their own (``qerberos witness serve``): an auditor, another Q module.
For each log it knows (by origin, with the log's verifier keys) it keeps the latest checkpoint it cosigned,
durably, in ``<state>/logs/<SHA-256 of the origin, hex>``: the note with the log's signatures that it verified
and its own cosignature, which is what it serves to monitors. A submission (``add_checkpoint``) is the old
size it claims the witness holds, a consistency proof from that size, and the new checkpoint; it is
refused when the log is unknown (``UnknownLogError``), not signed by the log's key
(``UntrustedCheckpointError``), malformed or with an old size above the new one
(``MalformedSubmissionError``), when the old size is not the witness's (``StaleSizeError``, which carries it),
and when the proof does not prove the new tree a consistent extension of the stored one
(``InconsistentCheckpointError``). Checking the old size and recording the new checkpoint happen under one
lock, so two submissions cannot roll the witness back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from models import keys
from models.cosigner import Cosigner
from models.signed_note import format_note
from qerberos import verifier
from qerberos.errors import ConfigurationError, NotFoundError, QerberosError

__all__ = [
    "InconsistentCheckpointError",
    "MalformedSubmissionError",
    "StaleSizeError",
    "UnknownLogError",
    "UntrustedCheckpointError",
    "Witness",
    "WitnessError",
    "create_witness_home",
    "load_cosigner",
    "origin_hash",
]

logger = logging.getLogger(__name__)

MAX_PROOF_LINES = 63
_HOME_FILE = "witness.json"
_KEY_FILE = "witness-key.pem"
_OLD_SIZE = re.compile(r"old (0|[1-9][0-9]*)", re.ASCII)
_ORIGIN_HASH = re.compile(r"[0-9a-f]{64}", re.ASCII)


class WitnessError(QerberosError):
    """A submission the witness does not cosign."""


class MalformedSubmissionError(WitnessError):
    """The request body is not an old size, proof lines, a blank line and a checkpoint (or old > new)."""


class UnknownLogError(WitnessError):
    """The checkpoint's origin is not a log this witness knows."""


class UntrustedCheckpointError(WitnessError):
    """No valid signature by the log's key, or one of its signatures does not verify."""


class StaleSizeError(WitnessError):
    """The old size is not the size of the checkpoint the witness last cosigned (``size``)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the witness's latest cosigned checkpoint has size {size}", details={"size": size})
        self.size = size


class InconsistentCheckpointError(WitnessError):
    """The checkpoint is not a consistent extension of the one the witness last cosigned."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Submission:
    old_size: int
    proof: list[bytes]
    note: str


def create_witness_home(directory: Path, name: str, passphrase: str | None = None) -> Cosigner:
    """A new witness named ``name`` in ``directory``: its key (mode 0600, encrypted with a passphrase) and
    its name; refused if the directory already holds a witness."""
    directory = Path(directory)
    if (directory / _HOME_FILE).exists():
        raise ConfigurationError(f"{directory} already holds a witness: `qerberos witness key` prints its key")
    cosigner = Cosigner.generate(name)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cosigner.save(directory / _KEY_FILE, passphrase)
    document = {"name": name, "verifierKey": cosigner.verifier_key, "encrypted": bool(passphrase)}
    keys.write_atomically(directory / _HOME_FILE, (json.dumps(document, indent=2) + "\n").encode(), 0o644)
    return cosigner


def load_cosigner(directory: Path, passphrase: str | None = None) -> Cosigner:
    """The witness of ``directory`` (made by ``create_witness_home``), checked against its recorded key."""
    path = Path(directory) / _HOME_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        name, recorded = str(document["name"]), str(document["verifierKey"])
    except FileNotFoundError:
        raise ConfigurationError(f"no witness in {directory}: run `qerberos witness init`") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc
    cosigner = Cosigner.load(name, Path(directory) / _KEY_FILE, passphrase)
    if cosigner.verifier_key != recorded:
        raise ConfigurationError(f"the witness key in {directory} does not match {path}")
    return cosigner


def origin_hash(origin: str) -> str:
    """The lowercase hex SHA-256 of a log's origin: how the witness names the log in paths."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


class Witness:
    """The witness whose state lives in ``directory``, cosigning with ``cosigner`` for the logs of ``log_keys``."""

    def __init__(
        self,
        directory: Path,
        cosigner: Cosigner,
        log_keys: Sequence[str],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._logs = Path(directory) / "logs"
        self._cosigner = cosigner
        self._clock = clock
        self._keys: dict[str, list[verifier.VerifierKey]] = {}
        for vkey in log_keys:
            try:
                key = verifier.parse_verifier_key(vkey)
            except verifier.VerificationError as exc:
                raise ConfigurationError(f"not a log's verifier key: {exc.reason}") from exc
            self._keys.setdefault(key.name, []).append(key)

    @property
    def verifier_key(self) -> str:
        return self._cosigner.verifier_key

    def add_checkpoint(self, body: bytes) -> str:
        """Cosign the submitted checkpoint and return the cosignature line, or raise why not."""
        submission = _parse(body)
        checkpoint, opened = self._verified(submission.note)
        if submission.old_size > checkpoint.size:
            raise MalformedSubmissionError(f"old size {submission.old_size} exceeds the checkpoint's {checkpoint.size}")
        with keys.locked(self._logs) as directory:
            path = directory / origin_hash(checkpoint.origin)
            stored = _stored_tree(path)
            if submission.old_size != stored[0]:
                raise StaleSizeError(stored[0])
            try:
                _check_extends(stored, submission, checkpoint)
            except verifier.VerificationError as exc:
                logger.warning(
                    "refused a checkpoint of %s inconsistent with the one cosigned (%s); offered:\n%s",
                    checkpoint.origin, exc.reason, submission.note,
                )  # fmt: skip
                raise InconsistentCheckpointError(exc.reason) from exc
            line = self._cosigner.cosign(opened.text, int(self._clock()))
            keys.write_atomically(path, (format_note(opened) + line).encode("utf-8"), 0o644)
        return line

    def latest(self, hashed_origin: str) -> str:
        """The latest checkpoint cosigned for the log whose origin hashes to ``hashed_origin``."""
        if not _ORIGIN_HASH.fullmatch(hashed_origin):
            raise NotFoundError("not an origin hash")
        try:
            return (self._logs / hashed_origin).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NotFoundError("this witness has cosigned no checkpoint of that log") from None

    def _verified(self, note: str) -> tuple[verifier.Checkpoint, verifier.SignedNote]:
        try:
            parsed = verifier.parse_note(note)
            checkpoint = verifier.parse_checkpoint(parsed.text)
        except verifier.VerificationError as exc:
            raise MalformedSubmissionError(f"not a checkpoint: {exc.reason}") from exc
        trusted = self._keys.get(checkpoint.origin)
        if not trusted:
            raise UnknownLogError(f"this witness does not know the log {checkpoint.origin!r}")
        try:
            opened = verifier.verify_note(note, trusted)
        except verifier.VerificationError as exc:
            raise UntrustedCheckpointError(f"the checkpoint is not signed by the log: {exc.reason}") from exc
        return checkpoint, opened


def _parse(body: bytes) -> _Submission:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedSubmissionError("the body is not UTF-8") from exc
    header, separator, note = text.partition("\n\n")
    lines = header.split("\n")
    old = _OLD_SIZE.fullmatch(lines[0])
    if not separator or old is None:
        raise MalformedSubmissionError("the body is 'old <size>', proof lines, a blank line, then the checkpoint")
    proof = [verifier.decode_base64(line) for line in lines[1:]]
    if len(proof) > MAX_PROOF_LINES or any(node is None or len(node) != verifier.HASH_SIZE for node in proof):
        raise MalformedSubmissionError(f"proof lines are at most {MAX_PROOF_LINES} base64 SHA-256 hashes")
    return _Submission(int(old.group(1)), [node for node in proof if node is not None], note)


def _stored_tree(path: Path) -> tuple[int, bytes]:
    """Size and root of the checkpoint last cosigned (size 0 and the empty root before the first)."""
    try:
        note = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return 0, verifier.EMPTY_ROOT
    checkpoint = verifier.parse_checkpoint(verifier.parse_note(note).text)
    return checkpoint.size, checkpoint.root_hash


def _check_extends(stored: tuple[int, bytes], submission: _Submission, checkpoint: verifier.Checkpoint) -> None:
    """Raise ``VerificationError`` unless the checkpoint extends the stored tree as the proof shows."""
    if checkpoint.size == 0 and checkpoint.root_hash != verifier.EMPTY_ROOT:
        raise verifier.VerificationError("a checkpoint of size 0 has the empty tree's root")
    old_size, old_root = stored
    if old_size == 0:
        if submission.proof:
            raise verifier.VerificationError("a proof from size 0 is empty")
        return
    verifier.verify_consistency(old_size, checkpoint.size, old_root, checkpoint.root_hash, submission.proof)
