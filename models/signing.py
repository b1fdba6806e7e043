"""The log's signer: its origin, its active keys (several during a rotation) and the keys that verify.

A signer loaded from a home signs checkpoints only as ``models.signer_state`` allows (never a tree that is
inconsistent with the last one it signed), and keeps each one it signs in the home's checkpoint history
(``models.checkpoint_history``) before the caller stores or publishes it. A signer built without a home
verifies, and signs no checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from models import keys
from models.checkpoint_history import CheckpointHistory
from models.signed_note import Checkpoint, NoteSigner, sign_checkpoint, sign_note
from models.signer_state import ConsistencyProver, SignerState
from qerberos.errors import ConfigurationError


class LogSigner:
    def __init__(
        self, origin: str, signers: Sequence[NoteSigner], verifier_keys: Sequence[str], *, home: Path | None = None
    ) -> None:
        self.origin = origin
        self._signers = list(signers)
        self._verifier_keys = list(verifier_keys)
        self._state = None if home is None else SignerState(home)
        self._history = None if home is None else CheckpointHistory.of_home(home)

    @classmethod
    def load(cls, home: Path, origin: str, passphrase: str | None) -> LogSigner:
        return cls(origin, keys.load_signers(home, passphrase), keys.verifier_keys(home), home=home)

    @staticmethod
    def ensure(home: Path, origin: str, passphrase: str | None) -> None:
        keys.ensure_key(home, origin, passphrase)

    def sign_checkpoint(self, size: int, root_hash: bytes, prove: ConsistencyProver) -> str:
        """The signed checkpoint of the tree, once ``prove`` shows it consistent with the last one signed
        (``CheckpointRefusedError`` otherwise); kept in the checkpoint history before it is returned."""
        if self._state is None or self._history is None:
            raise ConfigurationError("this signer was loaded without its home: it keeps no state and signs no tree")
        with self._state.signing(size, root_hash, prove) as record:
            note = sign_checkpoint(Checkpoint(self.origin, size, root_hash), self._signers)
            self._history.add(note)
            record(note)
        return note

    def history(self) -> Iterator[tuple[int, str]]:
        """``(size, note)`` of every checkpoint in the home's history, smallest first (none without a home)."""
        if self._history is not None:
            yield from self._history.notes()

    def sign_text(self, text: str) -> str:
        """A signed note of ``text`` (ending in a newline) by every active key."""
        return sign_note(text, self._signers)

    def verifier_key(self) -> str:
        """The newest signing key's verifier key."""
        return self._signers[-1].verifier_key

    def verifier_keys(self) -> list[str]:
        """Every key that has signed this log, retired ones included (they verify older checkpoints)."""
        return list(self._verifier_keys)
