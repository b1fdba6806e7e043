"""The lock that makes one live-detection instance per database the alerting one (leader election), and one
event publisher the publishing one (a lock of its own).

A session-level PostgreSQL advisory lock held on a dedicated connection, or an exclusive ``flock`` on
``<sqlite file>.detector.lock`` (an in-memory SQLite database has one process only: the lock is always taken).
When the leader dies its lock goes with its connection or process, and another instance takes it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

__all__ = ["LeaderLock"]

logger = logging.getLogger(__name__)
_LEADER_LOCK_KEY = 0x71_64_65_74  # "qdet": the advisory lock of the alerting instance


class LeaderLock:
    """The alerting instance's lock: a PostgreSQL session advisory lock, or a flock beside the SQLite file."""

    def __init__(self, engine: Engine, *, key: int = _LEADER_LOCK_KEY, name: str = "detector") -> None:
        """``key`` (the advisory lock's) and ``name`` (the lock file's suffix) tell one leadership from another:
        the default is live detection's; the event publisher has its own."""
        self._engine = engine
        self._key = key
        self._lock_path = _sqlite_lock_path(engine, name)
        self._connection: Connection | None = None
        self._file: IO[bytes] | None = None
        self._guard = threading.Lock()  # the loop's thread acquires while ``stop`` may release
        self._released = False
        self.held = False

    def open(self) -> None:
        """Allow acquiring again after a release (the loop restarts)."""
        with self._guard:
            self._released = False

    def try_acquire(self) -> bool:
        with self._guard:
            if self._released:
                return False  # released by ``stop``: a loop still finishing its round must not take a new lock
            if not self.held:
                self.held = self._flock() if self._engine.dialect.name == "sqlite" else self._advisory()
            return self.held

    def _flock(self) -> bool:
        if self._lock_path is None:
            return True  # an in-memory database: one process only
        import fcntl

        handle = self._lock_path.open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def _advisory(self) -> bool:
        try:
            connection = self._engine.connect()
            got = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}).scalar())
            connection.commit()
        except SQLAlchemyError as exc:
            logger.warning("detector leader lock unavailable: %s", exc.__class__.__name__)
            return False
        if not got:
            connection.close()
            return False
        self._connection = connection
        return True

    def release(self) -> None:
        with self._guard:
            self._released = True
            if self._connection is not None:
                with contextlib.suppress(SQLAlchemyError):
                    self._connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                    self._connection.commit()
                self._connection.close()
                self._connection = None
            if self._file is not None:
                self._file.close()  # closing the descriptor drops the flock
                self._file = None
            self.held = False


def _sqlite_lock_path(engine: Engine, name: str) -> Path | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database).with_name(Path(database).name + f".{name}.lock")
