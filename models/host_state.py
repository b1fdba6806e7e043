"""What the worker processes of one host share when there is no Redis: used signed requests and the
one-minute request and failure counters, in an SQLite file of their own in ``QERBEROS_HOME``.

The file is created mode 0600 (SQLite gives its WAL and shared-memory files the same mode) and runs in WAL
mode. Each operation is one statement, so one short write (about 20 us of CPU). A caller on an event loop
asks with ``wait=False`` first: if another process is writing that moment it gets ``Busy`` at once, instead
of SQLite's busy handler sleeping on its loop, and asks again from a thread with ``wait=True``. Rows carry
their expiry, and now and then a write removes the expired ones, so the file holds about the last ten
minutes of traffic. Times are the wall clock, the one clock every process of the host reads alike.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from qerberos.errors import DependencyUnavailableError

FILE_NAME = "host-state.db"
PURGE_EVERY_SECONDS = 60.0
BUSY_TIMEOUT_SECONDS = 5.0

T = TypeVar("T")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS used_requests (key TEXT PRIMARY KEY, expires_at REAL NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS windows (key TEXT PRIMARY KEY, count INTEGER NOT NULL, ends_at REAL NOT NULL)"
    " WITHOUT ROWID",
)
_USE = (
    "INSERT INTO used_requests (key, expires_at) VALUES {values}"
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


class Busy(Exception):
    """Another process writes the file this moment (raised only to a caller that chose not to wait)."""


class HostState:
    """Two connections per process: one that fails at once when the file is busy, one that waits for it."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._next_purge = 0.0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            self._waiting = self._connect(BUSY_TIMEOUT_SECONDS)
            self._prompt = self._connect(0.0)
            for statement in _SCHEMA:
                self._waiting.execute(statement)
        except (OSError, sqlite3.Error) as exc:
            raise DependencyUnavailableError(f"the workers' shared state {path} cannot be opened: {exc}") from exc
        self._locks = {id(self._waiting): threading.Lock(), id(self._prompt): threading.Lock()}

    @classmethod
    def in_home(cls, home: Path) -> HostState:
        return cls(home / FILE_NAME)

    def first_use(self, keys: Sequence[str], ttl: float, *, wait: bool = True) -> bool:
        """Record every key for ``ttl`` seconds; ``True`` when none of them was recorded and still live."""
        now = self._clock()
        statement = _USE.format(values=", ".join(["(?, ?)"] * len(keys)))
        parameters = [*(value for key in keys for value in (key, now + ttl)), now]
        changed = self._run(wait, lambda connection: connection.execute(statement, parameters).rowcount)
        return changed == len(keys)

    def hit(self, key: str, window: float, *, wait: bool = True) -> tuple[int, float]:
        """Count one in ``key``'s fixed window; ``(count in the window, seconds until it ends)``."""
        now = self._clock()
        parameters = {"key": key, "now": now, "window": window}
        ((count, ends_at),) = self._run(wait, lambda connection: connection.execute(_HIT, parameters).fetchall())
        return int(count), float(ends_at) - now

    def close(self) -> None:
        for connection in (self._prompt, self._waiting):
            with self._locks[id(connection)]:
                connection.close()

    def _connect(self, timeout: float) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    def _run(self, wait: bool, statement: Callable[[sqlite3.Connection], T]) -> T:
        """One statement (its own transaction); ``Busy`` when not waiting and another process writes."""
        connection = self._waiting if wait else self._prompt
        with self._locks[id(connection)]:
            try:
                answer = statement(connection)
            except sqlite3.Error as exc:
                if not wait and _is_busy(exc):
                    raise Busy from exc
                raise DependencyUnavailableError(f"the workers' shared state {self.path} failed: {exc}") from exc
            self._purge_now_and_then(connection)
        return answer

    def _purge_now_and_then(self, connection: sqlite3.Connection) -> None:
        """Expired rows go once a minute; a busy or failing purge is left to the next write (the rows it would
        remove are expired: they answer as absent either way)."""
        now = self._clock()
        if now < self._next_purge:
            return
        try:
            for statement in _PURGE:
                connection.execute(statement, (now,))
        except sqlite3.Error:
            return
        self._next_purge = now + PURGE_EVERY_SECONDS


def _is_busy(exc: sqlite3.Error) -> bool:
    primary = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # the extended code's primary part
    return primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
