"""Where commands write what they produce (a backup, an exported bundle): a new or empty directory, so that
what they write is never mixed with files an earlier run or anyone else left there."""

from __future__ import annotations

from pathlib import Path

from qerberos.errors import ConfigurationError


def prepare_output_directory(directory: Path) -> None:
    """Create ``directory``; ``ConfigurationError`` when it exists and is not an empty directory."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ConfigurationError(f"{directory} exists and is not an empty directory: choose a new one")
    directory.mkdir(parents=True, exist_ok=True)
