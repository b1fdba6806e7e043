"""Durable file operations: what a rename or a new file needs to survive a crash."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_directory"]


def fsync_directory(path: Path) -> None:
    """Flush ``path``'s own entries (a file created or renamed in it) to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
