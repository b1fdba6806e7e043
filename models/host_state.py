"""What the worker processes of one host share when there is no Redis: used signed requests and the
one-minute request and failure counters, in an SQLite file of their own in ``QERBEROS_HOME``.

The file is created mode 0600 (SQLite gives its WAL and shared-memory files the same mode) and runs in WAL
mode, so that workers read while another writes. Each operation is one short transaction; rows carry their
expiry and a write removes expired rows now and then, so the file stays as small as the last ten minutes of
traffic. Times are the wall clock, the one clock every process of the host reads alike.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from qerberos.errors import DependencyUnavailableError

FILE_NAME = "host-state.db"
PURGE_EVERY_SECONDS = 60.0
BUSY_TIMEOUT_SECONDS = 5.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS used_requests (key TEXT PRIMARY KEY, expires_at REAL NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS windows (key TEXT PRIMARY KEY, count INTEGER NOT NULL, ends_at REAL NOT NULL)"
    " WITHOUT ROWID",
)
_USE = (
    "INSERT INTO used_requests (key, expires_at) VALUES (?, ?)"
    " ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE used_requests.expires_at <= ?"
)
_HIT = (
    "INSERT INTO windows (key, count, ends_at) VALUES (:key, 1, :now + :window)"
    " ON CONFLICT (key) DO UPDATE SET"
    " count = CASE WHEN windows.ends_at <= :now THEN 1 ELSE windows.count + 1 END,"
    " ends_at = CASE WHEN windows.ends_at <= :now THEN :now + :window ELSE windows.ends_at END"
    " RETURNING count, ends_at"
)
_PURGE = (
    "DELETE FROM used_requests WHERE expires_at <= ?",
    "DELETE FROM windows WHERE ends_at <= ?",
)


class HostState:
    """One connection per process, used by one thread at a time; every process of the host opens the same file."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._next_purge = 0.0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            self._connection = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
            with self._transaction() as connection:
                for statement in _SCHEMA:
                    connection.execute(statement)
        except (OSError, sqlite3.Error) as exc:
            raise DependencyUnavailableError(f"the workers' shared state {path} cannot be opened: {exc}") from exc

    @classmethod
    def in_home(cls, home: Path) -> HostState:
        return cls(home / FILE_NAME)

    def first_use(self, keys: Sequence[str], ttl: float) -> bool:
        """Record every key for ``ttl`` seconds; ``True`` when none of them was recorded and still live."""
        now = self._clock()
        with self._transaction() as connection:
            fresh = [connection.execute(_USE, (key, now + ttl, now)).rowcount == 1 for key in keys]
        return all(fresh)

    def hit(self, key: str, window: float) -> tuple[int, float]:
        """Count one in ``key``'s fixed window; ``(count in the window, seconds until it ends)``."""
        now = self._clock()
        with self._transaction() as connection:
            ((count, ends_at),) = connection.execute(_HIT, {"key": key, "now": now, "window": window}).fetchall()
        return int(count), float(ends_at) - now

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` .. ``COMMIT`` (rolled back on error), expired rows purged now and then."""
        with self._lock:
            connection = self._connection
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield connection
                    now = self._clock()
                    if now >= self._next_purge:
                        for statement in _PURGE:
                            connection.execute(statement, (now,))
                        self._next_purge = now + PURGE_EVERY_SECONDS
                    connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise DependencyUnavailableError(f"the workers' shared state {self.path} failed: {exc}") from exc
