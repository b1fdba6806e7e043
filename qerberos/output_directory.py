"""Where commands write what they produce (a backup, an exported bundle): a new or empty directory, so that
what they write is never mixed with files an earlier run or anyone else left there. The output is written
into a staging directory beside it and renamed into place at the end, so that a failed run leaves nothing."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from qerberos.errors import ConfigurationError


@contextlib.contextmanager
def staged_output_directory(directory: Path) -> Iterator[Path]:
    """A new directory (mode 700) beside ``directory`` to write into: renamed to ``directory`` when the block
    ends, removed with everything in it when the block raises, so that ``directory`` holds a whole output
    or nothing. ``ConfigurationError`` when ``directory`` exists and is not an empty directory."""
    _check_new_or_empty(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".partial", dir=directory.parent))
    try:
        yield staging
        try:
            os.replace(staging, directory)  # replaces an empty directory, refuses one written to meanwhile
        except OSError as exc:
            raise ConfigurationError(f"cannot move the output into {directory}: {exc.strerror}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _check_new_or_empty(directory: Path) -> None:
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ConfigurationError(f"{directory} exists and is not an empty directory: choose a new one")
