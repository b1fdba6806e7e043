"""Read what a score depends on from the ledger: a snapshot of its state ("now") and an identity's events.

Only indexed, bounded queries (TEAM.md: ``ledger_entries`` has an index on ``(actor_squid_id, seq)``):

- the snapshot (``ledger_snapshot``, one statement of three index probes): the ledger's size and its "now",
  the newest ``occurred_at_ms`` (``ix_ledger_entries_occurred``) but never later than the newest receipt
  time (the primary key's last row) plus a skew, so a client's far-future timestamp cannot freeze risk;
  rounded down to ``as_of_rounding``. It depends only on the ledger's state: the same ledger and request
  give the same answer. Risk time is ledger time: on an idle ledger, risk does not decay until events arrive.
- an identity's events (``read_rows``): its newest ``limit`` rows with ``seq`` in a range below the
  snapshot's size (``ix_ledger_entries_actor_seq`` + ``event_details``' primary key), so every read of one
  assessment sees the same ledger prefix, on PostgreSQL's read-committed statements too. Of these rows,
  qerberos's own (layer ``qerberos``: alerts, risk changes) and those dated after "now" are left out of the
  history (``history_cache.py``). "Never seen for this identity" means within these events.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from typing import Protocol

import msgspec
from sqlalchemy import Connection, bindparam, func, select

from analytics.risk.factors import AlertView, DetectorScoreView
from models.records import ERASURE_TYPE
from models.tables import EventDetails, LedgerEntry

_entries = LedgerEntry.__table__  # type: ignore[attr-defined]
_details = EventDetails.__table__  # type: ignore[attr-defined]
OWN_LAYER = "qerberos"

_SNAPSHOT = select(
    select(func.max(_entries.c.seq)).scalar_subquery(),
    select(func.max(_entries.c.occurred_at_ms)).scalar_subquery(),
    select(_entries.c.received_at_ms).order_by(_entries.c.seq.desc()).limit(1).scalar_subquery(),
)
_ROWS = (
    select(_entries.c.occurred_at_ms, _entries.c.type, _entries.c.layer, _entries.c.verdict, _details.c.details)
    .outerjoin(_details, _details.c.seq == _entries.c.seq)
    .where(
        _entries.c.actor_squid_id == bindparam("identity"),
        _entries.c.seq >= bindparam("start"),
        _entries.c.seq < bindparam("size"),
    )
    .order_by(_entries.c.seq.desc())
    .limit(bindparam("limit"))
)
_ALL_ROWS = (
    select(
        _entries.c.actor_squid_id, _entries.c.occurred_at_ms, _entries.c.type, _entries.c.layer, _entries.c.verdict,
        _details.c.details,
    )
    .outerjoin(_details, _details.c.seq == _entries.c.seq)
    .where(_entries.c.seq < bindparam("size"))
    .order_by(_entries.c.seq)
)  # fmt: skip
_STREAM = {"stream_results": True, "yield_per": 10_000}  # PostgreSQL: a server-side cursor, not 1 M rows at once


class _Access(msgspec.Struct):
    """The access details risk reads from an event's details (every other key is ignored)."""

    ip: str | None = None
    country: str | None = None
    device: str | None = None


_access_decoder = msgspec.json.Decoder(_Access)
_NO_ACCESS = _Access()


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerSnapshot:
    """The ledger's state an assessment reads: ``size`` entries (seq ``0..size-1``) and its "now"."""

    size: int
    as_of_ms: int


#: What a history event holds besides its time: ``(type, verdict, ip, country, device)``.
EventFields = tuple[str, str, str | None, str | None, str | None]


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerRow:
    """One of an identity's ledger rows as risk reads it; ``own``: qerberos's own (no access details read)."""

    occurred_at_ms: int
    own: bool
    fields: EventFields

    @property
    def erases_details(self) -> bool:
        return self.own and self.fields[0] == ERASURE_TYPE


class AlertReader(Protocol):
    """What the risk service reads of detection, on the connection it reads the ledger with
    (``analytics.risk.alerts.AlertTables``)."""

    def active_alerts(self, connection: Connection, identity: str) -> tuple[AlertView, ...]: ...

    def latest_score(self, connection: Connection, identity: str) -> DetectorScoreView | None: ...


class NoAlerts:
    """An alert reader with nothing to read (detection not installed, and in tests)."""

    def active_alerts(self, connection: Connection, identity: str) -> tuple[AlertView, ...]:
        return ()

    def latest_score(self, connection: Connection, identity: str) -> DetectorScoreView | None:
        return None


def ledger_snapshot(connection: Connection, *, rounding_ms: int, future_skew_ms: int) -> LedgerSnapshot:
    """The ledger's size and "now" (see the module doc); now is 0 for an empty ledger."""
    last_seq, newest, received = connection.execute(_SNAPSHOT).one()
    if last_seq is None:
        return LedgerSnapshot(0, 0)
    now = min(int(newest), int(received) + future_skew_ms)
    return LedgerSnapshot(int(last_seq) + 1, now - now % rounding_ms)


def read_rows(connection: Connection, identity: str, *, start: int, size: int, limit: int) -> list[LedgerRow]:
    """The identity's newest ``limit`` rows with ``start <= seq < size``, oldest first."""
    rows = connection.execute(_ROWS, {"identity": identity, "start": start, "size": size, "limit": limit}).all()
    return [_row(*row) for row in reversed(rows)]


def read_all_rows(connection: Connection, size: int) -> Iterator[tuple[str, LedgerRow]]:
    """Every ``(identity, row)`` with ``seq < size`` in seq order, in one pass over the ledger."""
    rows = connection.execution_options(**_STREAM).execute(_ALL_ROWS, {"size": size})
    for identity, *row in rows:
        yield identity, _row(*row)


def _row(occurred: int, type_: str, layer: str, verdict: str, details: str | None) -> LedgerRow:
    """Its strings interned: the history cache holds them for every identity, and a handful of types,
    verdicts, countries and devices would otherwise be one string object per row."""
    intern = sys.intern
    if layer == OWN_LAYER:
        return LedgerRow(occurred, True, (intern(type_), intern(verdict), None, None, None))
    access = _decode_access(details)
    ip, country, device = access.ip, access.country, access.device
    return LedgerRow(
        occurred,
        False,
        (intern(type_), intern(verdict), ip and intern(ip), country and intern(country), device and intern(device)),
    )


def _decode_access(details: str | None) -> _Access:
    if not details:
        return _NO_ACCESS
    try:
        return _access_decoder.decode(details)
    except msgspec.DecodeError:  # erased, not an object, or other types under these keys: no access data
        return _NO_ACCESS
