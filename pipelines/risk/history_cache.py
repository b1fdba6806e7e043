"""Each identity's newest ledger rows, kept in memory between assessments and brought up to date with the
rows the ledger appended since.

Why: reading an identity's rows costs ~1.5 ms of CPU at 1 M events, because they lie scattered over the
ledger's entry and details tables (a page of each per row). For an identity read before, the rows appended
since are one probe of the index on actor and seq (``models.reader.ReadSession.actor_rows``), usually empty.

The history is the same as a full read at the same ledger state (``ReadSession.actor_rows`` from seq 0):

- an entry holds the newest ``limit`` rows by seq below the ledger size it was read at, qerberos's own
  included (they take a place among the newest, as in a full read; they never reach the history);
- catching up reads the rows in ``[entry size, snapshot size)`` and keeps the newest ``limit`` of both;
- a ``gdpr.erasure`` among them means the older rows lost their details: the identity is read again in full;
- an entry newer than the request's snapshot (another thread moved it on) is not used: a full read;
- ``prime`` reads the whole ledger once (~5 s of CPU at 1 M events), so that no identity pays the
  scattered read on its first assessment; it runs only when every row fits in the cache.

Memory: 12 bytes per row (time and an index into the identity's distinct ``EventFields``, whose strings
are interned) plus those fields, ~20 bytes a row in all at 1 M events; bounded by
``max_rows`` per process; the identities used least recently leave first. ``max_rows = 0`` keeps nothing.
"""

from __future__ import annotations

import array
import collections
import dataclasses
import threading
from collections.abc import Sequence

from analytics.risk.factors import HistoryEvent
from analytics.risk.history import EventFields, LedgerRow, ledger_row
from analytics.taxonomy import Taxonomy
from models.reader import LedgerSnapshot, ReadSession

_OWN = 0  # the kind of qerberos's own rows: a place among the newest, never history


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    """The newest rows below ledger size ``size``, oldest first: ``times[i]`` and ``kinds[i]``, an index into
    ``fields`` (``_OWN``: qerberos's own row)."""

    size: int
    times: array.array[int]
    kinds: array.array[int]
    fields: tuple[EventFields | None, ...]

    @classmethod
    def of(cls, size: int, rows: Sequence[tuple[int, EventFields | None]]) -> _Entry:
        """From ``(occurred_at_ms, fields or None for an own row)``, oldest first."""
        index: dict[EventFields | None, int] = {None: _OWN}
        kinds = array.array("I", (index.setdefault(fields, len(index)) for _, fields in rows))
        return cls(size, array.array("q", (time for time, _ in rows)), kinds, tuple(index))

    def rows(self) -> list[tuple[int, EventFields | None]]:
        fields = self.fields
        return [(time, fields[kind]) for time, kind in zip(self.times, self.kinds, strict=True)]

    def history(self, as_of_ms: int) -> tuple[HistoryEvent, ...]:
        """The history at "now" ``as_of_ms``: the identity's rows up to then, without qerberos's own."""
        fields = self.fields
        return tuple(
            HistoryEvent(time, *fields[kind])  # type: ignore[misc]
            for time, kind in zip(self.times, self.kinds, strict=True)
            if kind != _OWN and time <= as_of_ms
        )


class _Met:
    """An identity's rows as one pass over the ledger meets them, as compact as an entry (at 1 M events,
    a tuple per row would hold ~400 MB until the pass ends); at most ``2 x limit`` are kept."""

    __slots__ = ("fields", "kinds", "times")

    def __init__(self) -> None:
        self.times = array.array("q")
        self.kinds = array.array("I")
        self.fields: dict[EventFields | None, int] = {None: _OWN}

    def add(self, row: LedgerRow, limit: int) -> None:
        self.times.append(row.occurred_at_ms)
        self.kinds.append(self.fields.setdefault(None if row.own else row.fields, len(self.fields)))
        if len(self.times) >= 2 * limit:
            del self.times[:-limit]
            del self.kinds[:-limit]

    def entry(self, size: int, limit: int) -> _Entry:
        fields = tuple(self.fields)
        newest = zip(self.times[-limit:], self.kinds[-limit:], strict=True)
        return _Entry.of(size, [(time, fields[kind]) for time, kind in newest])


def _pairs(rows: Sequence[LedgerRow]) -> list[tuple[int, EventFields | None]]:
    return [(row.occurred_at_ms, None if row.own else row.fields) for row in rows]


def _read_rows(
    session: ReadSession, taxonomy: Taxonomy, identity: str, *, start: int, size: int, limit: int
) -> list[LedgerRow]:
    rows = session.actor_rows(identity, start=start, size=size, limit=limit)
    return [ledger_row(taxonomy, *row) for row in rows]


class HistoryCache:
    """``history(session, identity, snapshot)``: the identity's history at ``snapshot`` (see the module doc)."""

    def __init__(self, *, limit: int, max_rows: int, taxonomy: Taxonomy) -> None:
        self._limit = limit
        self._taxonomy = taxonomy
        self._max_rows = max_rows
        self._entries: collections.OrderedDict[str, _Entry] = collections.OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    @property
    def rows_held(self) -> int:
        return self._held

    def history(self, session: ReadSession, identity: str, snapshot: LedgerSnapshot) -> tuple[HistoryEvent, ...]:
        with self._lock:
            entry = self._entries.get(identity)
            if entry is not None:
                self._entries.move_to_end(identity)
        if entry is None or entry.size > snapshot.size:
            entry = self._read(session, identity, snapshot.size)
        elif entry.size < snapshot.size:
            entry = self._caught_up(session, identity, entry, snapshot.size)
        self._keep(identity, entry)
        return entry.history(snapshot.as_of_ms)

    def prime(self, session: ReadSession, snapshot: LedgerSnapshot) -> int:
        """Hold every identity's newest rows at ``snapshot``, from one pass over the ledger; an identity
        already held at a later state keeps it. Returns how many identities were read (0: the ledger holds
        more rows than the cache may)."""
        if not 0 < snapshot.size <= self._max_rows:
            return 0
        met: dict[str, _Met] = {}
        for identity, occurred, type_, layer, verdict, details in session.all_actor_rows(snapshot.size):
            rows = met.get(identity)
            if rows is None:
                rows = met[identity] = _Met()
            rows.add(ledger_row(self._taxonomy, occurred, type_, layer, verdict, details), self._limit)
        for identity, rows in met.items():
            self._keep(identity, rows.entry(snapshot.size, self._limit))
        return len(met)

    def _read(self, session: ReadSession, identity: str, size: int) -> _Entry:
        return _Entry.of(
            size, _pairs(_read_rows(session, self._taxonomy, identity, start=0, size=size, limit=self._limit))
        )

    def _caught_up(self, session: ReadSession, identity: str, entry: _Entry, size: int) -> _Entry:
        new = _read_rows(session, self._taxonomy, identity, start=entry.size, size=size, limit=self._limit)
        if not new:
            return dataclasses.replace(entry, size=size)
        if any(row.erases_details for row in new):
            return self._read(session, identity, size)
        return _Entry.of(size, (entry.rows() + _pairs(new))[-self._limit :])

    def _keep(self, identity: str, entry: _Entry) -> None:
        if self._max_rows <= 0:
            return
        with self._lock:
            held = self._entries.get(identity)
            if held is not None:
                if held.size > entry.size:
                    return  # another thread stored a newer state meanwhile
                self._held -= len(held.times)
            self._entries[identity] = entry
            self._held += len(entry.times)
            while self._held > self._max_rows and self._entries:
                _, dropped = self._entries.popitem(last=False)
                self._held -= len(dropped.times)
