"""Read what a score depends on: the identity's ledger events, its alerts, and the ledger's "now".

Only indexed, bounded queries (TEAM.md: ``ledger_entries`` has an index on ``(actor_squid_id, seq)``):

- "now" (``ledger_now_ms``): the newest ``occurred_at_ms`` (``ix_ledger_entries_occurred``, one index
  probe), but never later than the newest receipt time (the primary key's last row) plus a skew, so a
  client's far-future timestamp cannot freeze risk; rounded down to ``as_of_rounding``. It depends only on
  the ledger's state: the same ledger and request give the same answer. Risk time is ledger time: on an
  idle ledger, risk does not decay until events arrive.
- the identity's newest ``history_limit`` events (``ix_ledger_entries_actor_seq`` + ``event_details``'
  primary key), of which those dated after "now" and qerberos's own (layer ``qerberos``: alerts, risk
  changes) are left out. "Never seen for this identity" means within these events.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec
from sqlalchemy import Connection, func, select

from analytics.risk.factors import AlertView, DetectorScoreView, HistoryEvent
from models.tables import EventDetails, LedgerEntry

logger = logging.getLogger(__name__)
_entries = LedgerEntry.__table__  # type: ignore[attr-defined]
_details = EventDetails.__table__  # type: ignore[attr-defined]
OWN_LAYER = "qerberos"


class _Access(msgspec.Struct):
    """The access details risk reads from an event's details (every other key is ignored)."""

    ip: str | None = None
    country: str | None = None
    device: str | None = None


_access_decoder = msgspec.json.Decoder(_Access)


class AlertLike(Protocol):
    """What risk reads of an alert row (``models.alerts``; TEAM.md alerts contract)."""

    severity: str
    score: float
    status: str
    created_at_ms: int
    updated_at_ms: int
    pattern: str
    technique: str | None


class AlertSource(Protocol):
    """The read side of ``models.alerts.AlertStore`` that risk needs."""

    def active_for(self, squid_id: str) -> Sequence[AlertLike]: ...

    def latest_score(self, squid_id: str) -> Any: ...


class NoAlerts:
    """An alert source with nothing in it (before detection is wired, and in tests)."""

    def active_for(self, squid_id: str) -> Sequence[Any]:
        return ()

    def latest_score(self, squid_id: str) -> Any:
        return None


def alert_views(rows: Sequence[Any]) -> tuple[AlertView, ...]:
    return tuple(
        AlertView(
            severity=str(row.severity),
            score=float(row.score or 0.0),
            status=str(row.status),
            created_at_ms=int(row.created_at_ms),
            updated_at_ms=int(row.updated_at_ms),
            pattern=str(row.pattern),
            technique=getattr(row, "technique", None),
        )
        for row in rows
    )


def detector_view(latest: Any) -> DetectorScoreView | None:
    """``AlertStore.latest_score`` may answer a row (``score``, ``window_start_ms``), a number, or None."""
    if latest is None:
        return None
    if isinstance(latest, int | float):
        return DetectorScoreView(float(latest), None)
    start = getattr(latest, "window_start_ms", None)
    return DetectorScoreView(float(latest.score), None if start is None else int(start))


def ledger_now_ms(connection: Connection, *, rounding_ms: int, future_skew_ms: int) -> int:
    """The ledger's "now" (see the module doc); 0 for an empty ledger."""
    newest = connection.execute(select(func.max(_entries.c.occurred_at_ms))).scalar()
    if newest is None:
        return 0
    received = connection.execute(
        select(_entries.c.received_at_ms).order_by(_entries.c.seq.desc()).limit(1)
    ).scalar_one()
    now = min(int(newest), int(received) + future_skew_ms)
    return now - now % rounding_ms


def read_history(connection: Connection, identity: str, as_of_ms: int, limit: int) -> tuple[HistoryEvent, ...]:
    """The identity's newest ``limit`` events dated up to ``as_of_ms``, oldest first, without qerberos's own."""
    rows = connection.execute(
        select(_entries.c.occurred_at_ms, _entries.c.type, _entries.c.layer, _entries.c.verdict, _details.c.details)
        .outerjoin(_details, _details.c.seq == _entries.c.seq)
        .where(_entries.c.actor_squid_id == identity)
        .order_by(_entries.c.seq.desc())
        .limit(limit)
    ).all()
    events: list[HistoryEvent] = []
    for occurred, type_, layer, verdict, details in rows:
        if layer == OWN_LAYER or occurred > as_of_ms:
            continue
        access = _decode_access(details)
        events.append(HistoryEvent(occurred, type_, verdict, access.ip, access.country, access.device))
    events.reverse()
    return tuple(events)


def _decode_access(details: str | None) -> _Access:
    if not details:
        return _Access()
    try:
        return _access_decoder.decode(details)
    except msgspec.DecodeError:  # erased, not an object, or other types under these keys: no access data
        return _Access()
