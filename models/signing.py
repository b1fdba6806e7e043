"""The log's signer: its origin, its active keys (several during a rotation) and the keys that verify."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from models import keys
from models.signed_note import Checkpoint, NoteSigner, sign_checkpoint, sign_note


class LogSigner:
    def __init__(self, origin: str, signers: Sequence[NoteSigner], verifier_keys: Sequence[str]) -> None:
        self.origin = origin
        self._signers = list(signers)
        self._verifier_keys = list(verifier_keys)

    @classmethod
    def load(cls, home: Path, origin: str, passphrase: str | None) -> LogSigner:
        return cls(origin, keys.load_signers(home, passphrase), keys.verifier_keys(home))

    @staticmethod
    def ensure(home: Path, origin: str, passphrase: str | None) -> None:
        keys.ensure_key(home, origin, passphrase)

    def sign_checkpoint(self, size: int, root_hash: bytes) -> str:
        return sign_checkpoint(Checkpoint(self.origin, size, root_hash), self._signers)

    def sign_text(self, text: str) -> str:
        """A signed note of ``text`` (ending in a newline) by every active key."""
        return sign_note(text, self._signers)

    def verifier_key(self) -> str:
        """The newest signing key's verifier key."""
        return self._signers[-1].verifier_key

    def verifier_keys(self) -> list[str]:
        """Every key that has signed this log, retired ones included (they verify older checkpoints)."""
        return list(self._verifier_keys)
