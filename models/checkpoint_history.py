"""Every checkpoint the log signs, outside its database: ``QERBEROS_HOME/checkpoints/``.

One file per checkpoint, named by its tree size the way tlog-tiles names tile indexes (size 1234067 is
``checkpoints/x001/x234/067``), holding the signed note as it was signed. A file is created once
(``O_EXCL``) and never overwritten: a second note for the same tree (the same size and root, signed again
during a key rotation) leaves the first in place, and a note for the same size with another root, which
the signer refuses to make, is refused here too. Someone who can change the database but not this
directory cannot make the log forget what it signed: ``verify`` checks the records against every file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from models.signed_note import checkpoint_of
from models.tiles import index_path, parse_index_path
from qerberos.durable import fsync_directory
from qerberos.errors import ConfigurationError, IntegrityError, ValidationError

__all__ = ["CheckpointHistory"]

_MODE = 0o644


class CheckpointHistory:
    """The checkpoint files of one log, in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def of_home(cls, home: Path) -> CheckpointHistory:
        return cls(Path(home) / "checkpoints")

    def add(self, note: str) -> None:
        """Keep ``note`` (a signed checkpoint) in a file of its own, durably, unless its tree is there."""
        size, root = _tree(note)
        path = self.directory / index_path(size)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _MODE)
        except FileExistsError:
            if _tree(path.read_text(encoding="utf-8")) != (size, root):
                raise IntegrityError(
                    f"{path} holds another checkpoint of size {size}: refusing a second tree of that size", seq=size
                ) from None
            return
        except OSError as exc:
            raise ConfigurationError(f"cannot write the checkpoint history {path}: {exc.strerror}") from exc
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(note)
                file.flush()
                os.fsync(file.fileno())
            fsync_directory(path.parent)
        except OSError as exc:
            raise ConfigurationError(f"cannot write the checkpoint history {path}: {exc.strerror}") from exc

    def notes(self) -> Iterator[tuple[int, str]]:
        """``(tree size, signed note)`` of every file, smallest size first (the notes are not verified here)."""
        for size, path in self._files():
            yield size, path.read_text(encoding="utf-8")

    def latest(self) -> str | None:
        """The note of the largest tree in the history, None when it is empty."""
        files = self._files()
        return files[-1][1].read_text(encoding="utf-8") if files else None

    def _files(self) -> list[tuple[int, Path]]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.rglob("*"):
            if path.is_file():
                try:
                    found.append((parse_index_path(path.relative_to(self.directory).parts), path))
                except ValidationError:
                    continue  # not a checkpoint file (an editor's backup, say)
        return sorted(found)


def _tree(note: str) -> tuple[int, bytes]:
    checkpoint = checkpoint_of(note)
    return checkpoint.size, checkpoint.root_hash
