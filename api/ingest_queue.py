"""Group commit for single-event ``POST /audit``: many concurrent requests, one ledger transaction.

With ``synchronous=FULL`` every commit costs an fsync, so one transaction per request caps a worker at a
few hundred events per second. Instead each request puts its (already validated) event on this worker's
queue and waits; one writer at a time takes everything queued (up to ``max_group`` events, after lingering
``linger`` seconds for stragglers) into ONE ``Ledger.append`` and then answers every request of the group
with its own record. A request is answered only after the commit that holds its event: nothing is
acknowledged that is not durable.

Semantics stay those of one append per request, in arrival order:
- a ``ConflictError`` or ``ValidationError`` that the ledger attributes to one item (``details["index"]``
  or details keyed by index) fails that request alone; the rest of the group is appended again without it;
  an error that names no item makes every item of the group commit alone, so each gets its own answer;
- an outage (``models.database.is_outage``: the database is down, locked or full) fails every request of
  the group with ``DependencyUnavailableError`` (503, retryable): never a silent loss, never a partial
  acknowledgement;
- any other failure (the database refused one row it was given, or a bug) makes every item of the group
  commit alone too: a bad item never fails its neighbours, and its own request gets its own error.
  Decoding refuses what a database could refuse (``qerberos.json_input``), so this is the safety net.

The writer runs only while there is work (it is started by the first request that finds it idle and ends
when the queue is empty), so a worker that stops after its in-flight requests have finished has nothing
left to flush; ``close()`` refuses new events and waits for the queued ones to be committed.

This lives in ``api/`` rather than ``models/``: it is a property of the asyncio worker (futures, one event
loop, threads for the synchronous ledger), not of the ledger, whose ``append`` stays the one all-or-nothing
domain operation that this module only calls.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import anyio.to_thread

from models.database import is_outage
from models.records import AppendResult, NewEvent
from qerberos.errors import ConflictError, DependencyUnavailableError, QerberosError, ValidationError

logger = logging.getLogger(__name__)

AppendFunction = Callable[[Sequence[NewEvent]], list[AppendResult]]

DEFAULT_MAX_GROUP = 1000
DEFAULT_LINGER_SECONDS = 0.001


@dataclasses.dataclass(frozen=True, slots=True)
class GroupStats:
    """What the queue has done so far (for tests and the benchmark; not part of any contract)."""

    groups: int
    events: int
    largest: int


@dataclasses.dataclass(slots=True)
class _Pending:
    event: NewEvent
    future: asyncio.Future[AppendResult]


class IngestQueue:
    """One worker's group-commit queue in front of ``append`` (``Ledger.append`` or a stand-in)."""

    def __init__(
        self,
        append: AppendFunction,
        *,
        max_group: int = DEFAULT_MAX_GROUP,
        linger: float = DEFAULT_LINGER_SECONDS,
    ) -> None:
        if max_group < 1:
            raise ValueError("max_group must be at least 1")
        self._append = append
        self._max_group = max_group
        self._linger = max(0.0, linger)
        self._pending: collections.deque[_Pending] = collections.deque()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self._groups = 0
        self._events = 0
        self._largest = 0

    @property
    def stats(self) -> GroupStats:
        return GroupStats(self._groups, self._events, self._largest)

    @property
    def closed(self) -> bool:
        return self._closed

    async def submit(self, event: NewEvent) -> AppendResult:
        """Append ``event`` with whatever else is queued; return its record once the group committed."""
        if self._closed:
            raise DependencyUnavailableError("the service is stopping; retry on another worker")
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(event, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain(), name="qerberos-group-commit")
        # shield: a client that disconnects does not cancel the commit of the group its event is in
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Refuse new events and wait until every queued one is committed (or failed)."""
        self._closed = True
        writer = self._writer
        if writer is not None:
            await asyncio.shield(writer)

    async def _drain(self) -> None:
        try:
            while self._pending:
                if self._linger and len(self._pending) < self._max_group:
                    await asyncio.sleep(self._linger)
                group = [self._pending.popleft() for _ in range(min(self._max_group, len(self._pending)))]
                await self._commit(group)
        finally:
            self._writer = None
            if self._pending:  # only after a cancellation: never leave a request waiting forever
                self._fail(list(self._pending), DependencyUnavailableError("the ledger writer stopped"))
                self._pending.clear()

    async def _commit(self, group: list[_Pending]) -> None:
        self._groups += 1
        self._events += len(group)
        self._largest = max(self._largest, len(group))
        try:
            outcomes = await anyio.to_thread.run_sync(self._append_isolating, [item.event for item in group])
        except BaseException as exc:
            self._fail(group, _unavailable(exc))
            raise
        for item, outcome in zip(group, outcomes, strict=True):
            if item.future.done():
                continue
            if isinstance(outcome, BaseException):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)

    def _append_isolating(self, events: list[NewEvent]) -> list[AppendResult | BaseException]:
        """Runs in a worker thread: one append for the group, again without any item it refuses."""
        outcomes: list[AppendResult | BaseException | None] = [None] * len(events)
        remaining = list(range(len(events)))
        while remaining:
            try:
                results = self._append([events[index] for index in remaining])
            except (ConflictError, ValidationError) as exc:
                culprits = _culprits(exc, len(remaining))
                if not culprits:
                    if len(remaining) == 1:
                        outcomes[remaining[0]] = _for_single(exc)
                    else:  # cannot tell whose: each alone
                        self._append_each(events, remaining, outcomes)
                    return _complete(outcomes)
                for position in culprits:
                    outcomes[remaining[position]] = _for_single(exc if len(culprits) == 1 else _narrowed(exc, position))
                remaining = [index for position, index in enumerate(remaining) if position not in culprits]
                continue
            except Exception as exc:
                if is_outage(exc):  # the database is down or locked: every event of the group fails alike
                    for index in remaining:
                        outcomes[index] = _unavailable(exc)
                    return _complete(outcomes)
                # the database refused something it was given, or a bug: whose, only each alone can tell
                logger.exception("group commit of %d events failed; appending each alone", len(remaining))
                self._append_each(events, remaining, outcomes)
                return _complete(outcomes)
            for index, result in zip(remaining, results, strict=True):
                outcomes[index] = result
            remaining = []
        return _complete(outcomes)

    def _append_each(
        self, events: list[NewEvent], indices: list[int], outcomes: list[AppendResult | BaseException | None]
    ) -> None:
        """Append each of ``events[indices]`` alone, in order, until the database is found down."""
        for position, index in enumerate(indices):
            try:
                outcomes[index] = self._append([events[index]])[0]
            except (ConflictError, ValidationError) as exc:
                outcomes[index] = _for_single(exc)
            except Exception as exc:
                if is_outage(exc):
                    for rest in indices[position:]:
                        outcomes[rest] = _unavailable(exc)
                    return
                outcomes[index] = _refused_alone(exc)

    def _fail(self, group: list[_Pending], exc: BaseException) -> None:
        for item in group:
            if not item.future.done():
                item.future.set_exception(exc)
                item.future.exception()  # mark retrieved: a cancelled waiter must not warn at collection


class WriterGate:
    """Queues this machine's ledger writers (every worker's group commits and batches) in the kernel.

    SQLite's own sequencer (``BEGIN IMMEDIATE``) makes a writer that finds the database locked poll with
    sleeps of up to 100 ms (its busy handler): two workers whose groups collide pay that in their p99. An
    exclusive ``flock`` taken first wakes the next writer the moment the previous one commits. It only
    orders writers that take it; the database's sequencer still guarantees correctness for every writer
    (CLI ingest, other hosts on PostgreSQL). With no path (PostgreSQL: its advisory lock already queues
    fairly) only the in-process lock is taken.
    """

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._local = threading.Lock()
        self._fd: int | None = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._local:
            if self._path is None:
                yield
                return
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


def _complete(outcomes: list[AppendResult | BaseException | None]) -> list[AppendResult | BaseException]:
    return [DependencyUnavailableError("no outcome") if outcome is None else outcome for outcome in outcomes]


def _culprits(exc: QerberosError, size: int) -> set[int]:
    """Positions in the appended list that the ledger's error names (``index`` or index-keyed details)."""
    details = exc.details
    index = details.get("index")
    if isinstance(index, int) and 0 <= index < size:
        return {index}
    named = {int(key) for key in details if isinstance(key, str) and key.isdigit() and int(key) < size}
    return named if named and len(named) == len(details) else set()


def _narrowed(exc: QerberosError, position: int) -> QerberosError:
    """The error of one item out of an error that names several."""
    return type(exc)(exc.message, details={"0": exc.details[str(position)]})


def _for_single(exc: QerberosError) -> QerberosError:
    """The error as a one-event append would have raised it: positions inside the group are not the caller's."""
    details = dict(exc.details)
    if "index" in details:
        details["index"] = 0
    elif len(details) == 1 and next(iter(details)).isdigit():
        details = {"0": next(iter(details.values()))}
    return type(exc)(exc.message, details=details)


class RefusedAloneError(Exception):
    """The database refused one event that every check of ours passed: a bug of ours, answered 500 (not 503:
    a retry would be refused again) and logged with its cause."""


def _refused_alone(exc: BaseException) -> RefusedAloneError:
    error = RefusedAloneError("the database refused this event alone")
    error.__cause__ = exc
    return error


def _unavailable(exc: BaseException) -> DependencyUnavailableError:
    if isinstance(exc, DependencyUnavailableError):
        return exc
    error = DependencyUnavailableError("the ledger's database is unavailable; the event was not logged")
    error.__cause__ = exc
    return error
