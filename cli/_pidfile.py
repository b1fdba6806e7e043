"""The pid file of a running ``qerberos serve``, and the lock that proves it is one.

``serve`` holds an exclusive ``flock`` on its pid file for as long as it runs, and removes the file on every
exit it lives through. A pid file whose lock nobody holds is stale (its server was killed with SIGKILL, or the
machine stopped): the pid in it may belong to any other program by now, so it is never signalled. The lock
goes with the server's open file, so it cannot outlive the process, whatever pid the system reuses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

_ACQUIRE_SECONDS = 1.0  # a ``read`` holds a shared lock for a moment: a starting server waits that out


@dataclasses.dataclass(frozen=True, slots=True)
class PidFile:
    """What a pid file says (``pid``: None while its server is writing it) and whether a server holds it."""

    path: Path
    pid: int | None
    held: bool


class AlreadyRunningError(Exception):
    """Another server holds the pid file's lock."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(f"already running (pid {pid})")
        self.pid = pid


def read(path: Path) -> PidFile | None:
    """The pid file at ``path``, None when there is none."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
            held = False
        except BlockingIOError:
            held = True
        text = os.read(descriptor, 64).decode("ascii", "replace").strip()
    finally:
        os.close(descriptor)  # and with it the shared lock, if taken
    return PidFile(path, int(text) if text.isdecimal() else None, held)


def remove_stale(path: Path) -> None:
    """Remove the pid file at ``path`` unless a server holds it (it may have started since it was read)."""
    found = read(path)
    if found is not None and not found.held:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def holding(path: Path) -> Iterator[None]:
    """Hold the pid file at ``path`` with this process's pid in it; remove it when the block ends.

    ``AlreadyRunningError`` when another server holds it. A stale file is taken over.
    """
    descriptor = _acquire(path)
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        yield
    finally:
        path.unlink(missing_ok=True)  # still under the lock: no other server can have written it
        os.close(descriptor)


def _acquire(path: Path) -> int:
    """The pid file's descriptor under an exclusive lock, mode 600, created if missing.

    The lock must be on the file the path names when it is taken: a stale file removed (``remove_stale``)
    between opening and locking would leave the lock on a file nobody can find, so then it is opened again.
    """
    deadline = time.monotonic() + _ACQUIRE_SECONDS
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            if time.monotonic() > deadline:
                found = read(path)
                raise AlreadyRunningError(found.pid if found else None) from None
            time.sleep(0.05)
            continue
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(descriptor).st_ino:
                return descriptor
        os.close(descriptor)
