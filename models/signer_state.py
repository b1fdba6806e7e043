"""The signer's own memory: the last checkpoint it signed, kept beside its keys, not in the database.

C2SP tlog-checkpoint: "A log MUST not sign any checkpoint which is inconsistent with any checkpoint it
previously signed." The database cannot be trusted to say what was signed (someone who can write it can
rewrite the tail consistently with our own append code, and the log would then sign the rewrite), so the
signer keeps ``QERBEROS_HOME/keys/signed-checkpoint``: the signed note of the largest tree it signed.
Before signing a tree it proves, with a consistency proof computed from the log's stored nodes and
checked by ``qerberos.verifier``, that the new tree and that one are consistent: the same tree, a
consistent extension (which becomes the new state), or a consistent prefix (a backup's snapshot signed
after the service moved on; the state stays). Anything else raises ``CheckpointRefusedError``, and
nothing is signed. The check and the update run under the key directory's lock, so concurrent signers
(workers, a backup) are serialised and none can sign a tree older than one another just recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from models import keys
from models.signed_note import checkpoint_of
from qerberos import verifier
from qerberos.errors import ConfigurationError, IntegrityError, QerberosError

__all__ = ["CheckpointRefusedError", "ConsistencyProver", "SignerState"]

ConsistencyProver = Callable[[int, int], Sequence[bytes]]
"""``prove(first, second)``: the RFC 9162 consistency proof from tree size ``first`` to ``second`` as the
log's stored nodes make it (``0 < first <= second``)."""

_FILE = "signed-checkpoint"


class CheckpointRefusedError(IntegrityError):
    """The signer refuses a tree that is not consistent with the last checkpoint it signed."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Tree:
    size: int
    root: bytes


class SignerState:
    """The last checkpoint signed with the keys of ``home``."""

    def __init__(self, home: Path) -> None:
        self._directory = keys.keys_dir(home)

    def last_signed(self) -> str | None:
        """The signed note of the largest tree signed so far; None before the first."""
        path = self._directory / _FILE
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigurationError(f"cannot read the signer's state {path}: {exc.strerror}") from exc

    def reset(self, note: str) -> None:
        """Make ``note`` the last signed checkpoint, whatever was there (a restore does this, audited)."""
        _tree_of(note)
        with keys.locked(self._directory) as directory:
            keys.write_atomically(directory / _FILE, note.encode("utf-8"), 0o600)

    @contextlib.contextmanager
    def signing(self, size: int, root: bytes, prove: ConsistencyProver) -> Iterator[Callable[[str], None]]:
        """Hold the lock, refuse the tree unless it is consistent with the last one signed, and yield
        ``record(note)``, which the caller calls with the note it signed for this tree."""
        with keys.locked(self._directory) as directory:
            last = self.last_signed()
            if last is not None:
                _check_consistent(_tree_of(last), _Tree(size, root), prove, last)

            def record(note: str) -> None:
                if last is None or size >= _tree_of(last).size:
                    keys.write_atomically(directory / _FILE, note.encode("utf-8"), 0o600)

            yield record


def _check_consistent(last: _Tree, new: _Tree, prove: ConsistencyProver, last_note: str) -> None:
    """Raise ``CheckpointRefusedError`` unless ``new`` and ``last`` are one tree, or one extends the other."""
    smaller, larger = (new, last) if new.size < last.size else (last, new)
    try:
        if smaller.size == 0:
            if smaller.root != verifier.EMPTY_ROOT:
                raise verifier.VerificationError("a tree of size 0 has the empty tree's root")
        else:
            proof = [] if smaller.size == larger.size else list(prove(smaller.size, larger.size))
            verifier.verify_consistency(smaller.size, larger.size, smaller.root, larger.root, proof)
    except (verifier.VerificationError, QerberosError) as exc:
        reason = exc.reason if isinstance(exc, verifier.VerificationError) else exc.message
        raise CheckpointRefusedError(
            f"refusing to sign the tree of size {new.size}: it is not consistent with the checkpoint of size "
            f"{last.size} signed before ({reason}); the database may have been rewritten. Last signed:\n"
            f"{last_note}",
            seq=min(new.size, last.size),
            details={"size": new.size, "lastSignedSize": last.size},
        ) from exc


def _tree_of(note: str) -> _Tree:
    try:
        checkpoint = checkpoint_of(note)
    except QerberosError as exc:
        raise ConfigurationError(f"the signer's state is not a signed checkpoint: {exc.message}") from exc
    return _Tree(checkpoint.size, checkpoint.root_hash)
